// The register-tiled micro-kernel written once in plain C++; each ISA translation unit includes
// it under its own compiler flags and the compiler vectorizes the NR-wide inner loop.
// Internal linkage on purpose: the copies built with different flags must never be merged, so
// this file uses no library templates either.
#pragma once

#include "backprop/config.hpp"

namespace backprop {
namespace {

template <typename T, index_t MR, index_t NR>
inline void micro_kernel_body(index_t kc, const T* __restrict a, const T* __restrict b,
                              T* __restrict c, index_t ldc, T alpha, T beta, index_t mr,
                              index_t nr) {
  // acc (MR x NR) = sum over p of a[:, p] (outer) b[p, :]
  T acc[MR][NR];
  for (index_t i = 0; i < MR; ++i)
    for (index_t j = 0; j < NR; ++j) acc[i][j] = T(0);
  for (index_t p = 0; p < kc; ++p) {
    const T* ap = a + p * MR;
    const T* bp = b + p * NR;
    for (index_t i = 0; i < MR; ++i) {
      const T ai = ap[i];
      for (index_t j = 0; j < NR; ++j) acc[i][j] += ai * bp[j];
    }
  }
  // Edge tiles write only their mr x nr corner; beta == 0 never reads C.
  for (index_t i = 0; i < mr; ++i) {
    T* row = c + i * ldc;
    if (beta == T(0)) {
      for (index_t j = 0; j < nr; ++j) row[j] = alpha * acc[i][j];
    } else {
      for (index_t j = 0; j < nr; ++j) row[j] = alpha * acc[i][j] + beta * row[j];
    }
  }
}

}  // namespace
}  // namespace backprop
