// The narrow transposed product C = alpha * A^T B + beta * C for a B of at most
// kNarrowMaxColumns columns: a layer's weight gradient X^T D when the layer has few outputs
// (10 classes). The register tile runs the other way round from the micro-kernels': one vector
// of W consecutive rows of C (W consecutive columns of A, which lie together in A's rows) times
// each of the n columns, so every lane does useful work and A is read once, in place, with no
// packing. Included by each instruction-set file, which instantiates it with its vector ops.
#pragma once

#include <type_traits>

#include "backprop/gemm_micro_kernel.hpp"
#include "gemm_register_tile.hpp"

namespace backprop {

// Whether Ops can write a vector's lanes down a column, `stride` elements apart (scatter).
template <typename Ops, typename = void>
struct HasColumnStore : std::false_type {};
template <typename Ops>
struct HasColumnStore<Ops, std::void_t<decltype(Ops::column_store_reaches(index_t(1)))>>
    : std::true_type {};

// Rows l < `rows` <= W of C from c on (row stride ldc, N = n <= kNarrowMaxColumns columns):
// C[l][j] = alpha * sum over p of a[p * lda + l] * b[p * ldb + j] (+ beta * C[l][j]; C is not
// read when beta == 0). W values are read from each row of A (a last, partial block comes in a
// zero-padded copy), and each C[l][j] is one chain of fused multiply-adds in k order, whatever
// the block and its row count: a row's bits do not depend on the rows around it.
template <typename Ops, int N>
inline void narrow_tn_rows(index_t rows, index_t k, const typename Ops::T* a, index_t lda,
                           const typename Ops::T* b, index_t ldb, typename Ops::T* c,
                           index_t ldc, typename Ops::T alpha, typename Ops::T beta) {
  using T = typename Ops::T;
  using V = typename Ops::V;
  constexpr index_t W = Ops::lanes;
  V acc[N];
#pragma GCC unroll 16
  for (int j = 0; j < N; ++j) acc[j] = Ops::zero();
  for (index_t p = 0; p < k; ++p, a += lda, b += ldb) {
    const V column = Ops::load(a);
#pragma GCC unroll 16
    for (int j = 0; j < N; ++j) acc[j] = Ops::fmadd(Ops::splat(b[j]), column, acc[j]);
  }
  // acc[j] holds column j of the W x N block. Written down the column where Ops can (a
  // scatter, and a gather of C when beta != 0) rather than row by row through a copy (below):
  // one AVX-512 thread, float GFLOP/s, alternated runs: 256 x 10 x 64 80-81 -> 96-101, 512 x
  // 10 x 128 100 -> 114-120, 784 x 10 x 128 107-111 -> 122-129; 256 x 3 x 64 the same.
  if constexpr (HasColumnStore<Ops>::value) {
    if (Ops::column_store_reaches(ldc)) {
#pragma GCC unroll 16
      for (int j = 0; j < N; ++j) {
        auto load_c = [&] { return Ops::load_column(c + j, ldc, rows); };
        Ops::store_column(c + j, ldc, scale_for_store<Ops>(acc[j], alpha, beta, load_c), rows);
      }
      return;
    }
  }
  T block[N][W];
#pragma GCC unroll 16
  for (int j = 0; j < N; ++j) Ops::store(block[j], acc[j]);
  for (index_t l = 0; l < rows; ++l) {
    T* row = c + l * ldc;
    for (int j = 0; j < N; ++j)
      row[j] = beta == T(0) ? alpha * block[j][l] : alpha * block[j][l] + beta * row[j];
  }
}

// narrow_tn_rows for a run-time n in [1, kNarrowMaxColumns].
template <typename Ops>
void narrow_tn_rows_of_width(index_t n, index_t rows, index_t k, const typename Ops::T* a,
                             index_t lda, const typename Ops::T* b, index_t ldb,
                             typename Ops::T* c, index_t ldc, typename Ops::T alpha,
                             typename Ops::T beta) {
  static_assert(kNarrowMaxColumns == 12, "one case per width below");
  switch (n) {
#define BACKPROP_NARROW_CASE(N) \
  case N:                       \
    return narrow_tn_rows<Ops, N>(rows, k, a, lda, b, ldb, c, ldc, alpha, beta);
    BACKPROP_NARROW_CASE(1)
    BACKPROP_NARROW_CASE(2)
    BACKPROP_NARROW_CASE(3)
    BACKPROP_NARROW_CASE(4)
    BACKPROP_NARROW_CASE(5)
    BACKPROP_NARROW_CASE(6)
    BACKPROP_NARROW_CASE(7)
    BACKPROP_NARROW_CASE(8)
    BACKPROP_NARROW_CASE(9)
    BACKPROP_NARROW_CASE(10)
    BACKPROP_NARROW_CASE(11)
    BACKPROP_NARROW_CASE(12)
#undef BACKPROP_NARROW_CASE
    default:
      break;
  }
}

}  // namespace backprop
