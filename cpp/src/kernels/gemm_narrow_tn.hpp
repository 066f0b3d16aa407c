// The narrow transposed product C = alpha * A^T B + beta * C for a B of at most
// kNarrowMaxColumns columns: a layer's weight gradient X^T D when the layer has few outputs
// (10 classes). The register tile runs the other way round from the micro-kernels': one or two
// vectors of consecutive rows of C (consecutive columns of A, which lie together in A's rows)
// times each of the n columns, so every lane does useful work and A is read in place, with no
// packing. Included by each instruction-set file, which instantiates it with its vector ops.
#pragma once

#include <algorithm>
#include <cmath>
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

// Rows l < `rows` <= Vectors * lanes of C from c on (row stride ldc, N columns):
// C[l][j] = alpha * sum over p of a[p * lda + l] * b[p * ldb + j] (+ beta * C[l][j]; C is not
// read when beta == 0). Vectors * lanes values are read from each row of A (a last, partial
// block comes in a zero-padded copy), and each C[l][j] is one chain of fused multiply-adds in k
// order, whatever the block, its row count and the columns beside it: a row's bits do not
// depend on the rows around it.
template <typename Ops, int Vectors, int N>
inline void narrow_tn_block(index_t rows, index_t k, const typename Ops::T* a, index_t lda,
                            const typename Ops::T* b, index_t ldb, typename Ops::T* c,
                            index_t ldc, typename Ops::T alpha, typename Ops::T beta) {
  using T = typename Ops::T;
  using V = typename Ops::V;
  constexpr index_t W = Ops::lanes;
  V acc[Vectors][N];
#pragma GCC unroll 16
  for (int v = 0; v < Vectors; ++v)
#pragma GCC unroll 16
    for (int j = 0; j < N; ++j) acc[v][j] = Ops::zero();
  for (index_t p = 0; p < k; ++p, a += lda, b += ldb) {
    V column[Vectors];
#pragma GCC unroll 16
    for (int v = 0; v < Vectors; ++v) column[v] = Ops::load(a + v * W);
#pragma GCC unroll 16
    for (int j = 0; j < N; ++j) {
      const V b_pj = Ops::splat(b[j]);
#pragma GCC unroll 16
      for (int v = 0; v < Vectors; ++v) acc[v][j] = Ops::fmadd(b_pj, column[v], acc[v][j]);
    }
  }
#pragma GCC unroll 16
  for (int v = 0; v < Vectors; ++v) {
    const index_t vector_rows = std::min(W, rows - v * W);
    if (vector_rows <= 0) return;
    T* const c_v = c + v * W * ldc;
    // acc[v][j] holds column j of a W x N block. Written down the column where Ops can (a
    // scatter, and a gather of C when beta != 0) rather than row by row through a copy
    // (below): one AVX-512 thread, float GFLOP/s, alternated runs: 256 x 10 x 64 80-81 ->
    // 96-101, 512 x 10 x 128 100 -> 114-120, 784 x 10 x 128 107-111 -> 122-129; 256 x 3 x 64
    // the same.
    if constexpr (HasColumnStore<Ops>::value) {
      if (Ops::column_store_reaches(ldc)) {
#pragma GCC unroll 16
        for (int j = 0; j < N; ++j) {
          auto load_c = [&] { return Ops::load_column(c_v + j, ldc, vector_rows); };
          Ops::store_column(c_v + j, ldc, scale_for_store<Ops>(acc[v][j], alpha, beta, load_c),
                            vector_rows);
        }
        continue;
      }
    }
    // Else through a copy: scale_for_store's alpha step on whole vectors, then its beta step per
    // entry (the same rounding), the test of beta out of the loop. With the tests inside, each
    // entry cost a test and two branches, more than the products at small k: one AVX2 thread
    // on Zen 3, whole products in place, float GFLOP/s, alternated: 128 x 10 x 32 16.4 -> 40.0,
    // 512 x 10 x 128 39.8 -> 46.3.
    T block[N][W];
#pragma GCC unroll 16
    for (int j = 0; j < N; ++j)
      Ops::store(block[j], scale_for_store<Ops>(acc[v][j], alpha, T(0), [] { return V(); }));
    if (beta == T(0)) {
      for (index_t l = 0; l < vector_rows; ++l)
#pragma GCC unroll 16
        for (int j = 0; j < N; ++j) c_v[l * ldc + j] = block[j][l];
    } else {
      for (index_t l = 0; l < vector_rows; ++l)
#pragma GCC unroll 16
        for (int j = 0; j < N; ++j) {
          T& out = c_v[l * ldc + j];
          out = std::fma(beta, out, block[j][l]);
        }
    }
  }
}

// narrow_tn_block on all N columns, or on runs of them, as even as can be, of at most
// max_columns: Vectors x max_columns accumulators, the Vectors values of A, a broadcast of B,
// alpha and beta (live across the loop) fit in Registers vector registers. One more column
// spilled an accumulator to the stack on AVX2: 16 x 6 x 128 float in L1, 31 GFLOP/s against
// 48 at 5.
template <typename Ops, int Vectors, int Registers, int N>
inline void narrow_tn_rows(index_t rows, index_t k, const typename Ops::T* a, index_t lda,
                           const typename Ops::T* b, index_t ldb, typename Ops::T* c,
                           index_t ldc, typename Ops::T alpha, typename Ops::T beta) {
  constexpr int max_columns = (Registers - 3 - Vectors) / Vectors;
  static_assert(max_columns >= 1, "a column's accumulators fit");
  constexpr int runs = (N + max_columns - 1) / max_columns, first = (N + runs - 1) / runs;
  narrow_tn_block<Ops, Vectors, first>(rows, k, a, lda, b, ldb, c, ldc, alpha, beta);
  if constexpr (first < N)
    narrow_tn_rows<Ops, Vectors, Registers, N - first>(rows, k, a, lda, b + first, ldb,
                                                       c + first, ldc, alpha, beta);
}

// narrow_tn_rows for a run-time n in [1, kNarrowMaxColumns], on blocks of Vectors vectors of
// rows (NarrowKernel::width rows) in Registers vector registers.
template <typename Ops, int Vectors, int Registers>
void narrow_tn_rows_of_width(index_t n, index_t rows, index_t k, const typename Ops::T* a,
                             index_t lda, const typename Ops::T* b, index_t ldb,
                             typename Ops::T* c, index_t ldc, typename Ops::T alpha,
                             typename Ops::T beta) {
  static_assert(kNarrowMaxColumns == 12, "one case per width below");
  switch (n) {
#define BACKPROP_NARROW_CASE(N) \
  case N:                       \
    return narrow_tn_rows<Ops, Vectors, Registers, N>(rows, k, a, lda, b, ldb, c, ldc, alpha, beta);
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
