// The portable micro-kernels: plain C++ at the target's baseline (SSE2 on x86-64), the path
// for CPUs without AVX2 and the twin the SIMD paths are tested against.
#include "backprop/gemm_micro_kernel.hpp"

namespace backprop {
namespace {

template <typename T, index_t MR, index_t NR>
inline void micro_kernel_body(index_t kc, const PanelOperands<T>& panels, T* __restrict c,
                              index_t ldc, T alpha, T beta, index_t mr, index_t nr) {
  // acc (MR x NR) = sum over p of a[:, p] (outer) b[p, :]
  T acc[MR][NR];
  for (index_t i = 0; i < MR; ++i)
    for (index_t j = 0; j < NR; ++j) acc[i][j] = T(0);
  for (index_t p = 0; p < kc; ++p) {
    const T* ap = panels.a + p * panels.a_k;
    const T* bp = panels.b + p * panels.b_k;
    for (index_t i = 0; i < MR; ++i) {
      const T ai = ap[i * panels.a_row];
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

// A tile at most NR / 2 wide may come in a panel only that wide: read no further. A tile two
// panels wide is two tiles here.
template <typename T, index_t MR, index_t NR>
void tile_of_height(index_t kc, const PanelOperands<T>& panels, T* c, index_t ldc, T alpha,
                    T beta, index_t mr, index_t nr) {
  if (panels.b_next != nullptr) {
    PanelOperands<T> next = panels;
    next.b = panels.b_next;
    micro_kernel_body<T, MR, NR>(kc, panels, c, ldc, alpha, beta, mr, NR);
    micro_kernel_body<T, MR, NR>(kc, next, c + NR, ldc, alpha, beta, mr, NR);
  } else if (nr <= NR / 2)
    micro_kernel_body<T, MR, NR / 2>(kc, panels, c, ldc, alpha, beta, mr, nr);
  else
    micro_kernel_body<T, MR, NR>(kc, panels, c, ldc, alpha, beta, mr, nr);
}

// A panel of SHORT_MR rows may be A read in place: its tile reads no row past its own.
template <typename T, typename Blocks>
void micro_kernel(index_t kc, const PanelOperands<T>& panels, T* c, index_t ldc, T alpha,
                  T beta, index_t mr, index_t nr) {
  if constexpr (Blocks::SHORT_MR > 0) {
    if (mr == Blocks::SHORT_MR) {
      tile_of_height<T, Blocks::SHORT_MR, Blocks::NR>(kc, panels, c, ldc, alpha, beta, mr, nr);
      return;
    }
  }
  tile_of_height<T, Blocks::MR, Blocks::NR>(kc, panels, c, ldc, alpha, beta, mr, nr);
}

}  // namespace

void micro_kernel_generic_s6x16(index_t kc, const PanelOperands<float>& panels, float* c,
                                index_t ldc, float alpha, float beta, index_t mr, index_t nr) {
  micro_kernel<float, GemmBlocking<float>>(kc, panels, c, ldc, alpha, beta, mr, nr);
}

void micro_kernel_generic_d6x8(index_t kc, const PanelOperands<double>& panels, double* c,
                               index_t ldc, double alpha, double beta, index_t mr, index_t nr) {
  micro_kernel<double, GemmBlocking<double>>(kc, panels, c, ldc, alpha, beta, mr, nr);
}

void column_kernel_generic_s6x16(const TileColumn<float>& column) {
  for_each_tile_call(column, micro_kernel<float, GemmBlocking<float>>);
}

void column_kernel_generic_d6x8(const TileColumn<double>& column) {
  for_each_tile_call(column, micro_kernel<double, GemmBlocking<double>>);
}

}  // namespace backprop
