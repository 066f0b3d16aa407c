// The register-tiled micro-kernel, written once over a vector type: the AVX2 and AVX-512 files
// instantiate it with their vector operations (Ops) and their tile heights. The tile of C, R rows
// of one or two vectors, stays in registers across the k loop; each k step multiplies a column
// of the A panel (R broadcasts) by a row of the B panel (one or two vector loads).
//
// Ops provides: T, V, lanes, zero, splat, load, store, add, mul, fmadd, and
// load_part(p, count) / store_part(p, v, count), which touch only the first `count` lanes.
//
// Every entry of C is one chain of fused multiply-adds in k order (two, even and odd steps, in
// a tile one vector wide), scaled and stored the same way whatever the tile's height: its bits
// depend on its column panel's width, never on the rows computed beside it.
#pragma once

#include <immintrin.h>

#include <type_traits>

#include "backprop/gemm_micro_kernel.hpp"

namespace backprop {

// alpha * acc + beta * C, with C from load_c() read only when beta != 0: the write-back of
// every kernel here and of the narrow one (gemm_narrow_tn.hpp).
template <typename Ops, typename LoadC>
inline typename Ops::V scale_for_store(typename Ops::V acc, typename Ops::T alpha,
                                       typename Ops::T beta, LoadC&& load_c) {
  using T = typename Ops::T;
  if (alpha != T(1)) acc = Ops::mul(acc, Ops::splat(alpha));
  if (beta != T(0)) acc = Ops::fmadd(Ops::splat(beta), load_c(), acc);
  return acc;
}

// C = alpha * acc + beta * C on the first `count` lanes of one vector of a row, never reading
// C when beta == 0 (lanes past count are neither read nor written).
template <typename Ops>
inline void store_tile_vector(typename Ops::T* out, typename Ops::V acc, typename Ops::T alpha,
                              typename Ops::T beta, index_t count) {
  if (count >= Ops::lanes) {
    Ops::store(out, scale_for_store<Ops>(acc, alpha, beta, [&] { return Ops::load(out); }));
    return;
  }
  Ops::store_part(out, scale_for_store<Ops>(acc, alpha, beta,
                                            [&] { return Ops::load_part(out, count); }),
                  count);
}

// Rows 0..mr of a tile of `vectors` vectors per row into C, its first nr columns.
template <typename Ops, int R, int vectors>
inline void store_tile(const typename Ops::V (&acc)[R][vectors], typename Ops::T* c, index_t ldc,
                       typename Ops::T alpha, typename Ops::T beta, index_t mr, index_t nr) {
  // A whole tile, the common case, stores whole vectors with no row or lane counts: through
  // the general loop below, GCC's code for the counts cost the AVX2 path on Zen 2 up to 8%
  // (512 x 512 x 128 TN float, one thread: 84 -> 91 GFLOP/s with this branch).
  if (mr == R && nr == vectors * Ops::lanes) {
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
      for (int v = 0; v < vectors; ++v)
        store_tile_vector<Ops>(c + i * ldc + v * Ops::lanes, acc[i][v], alpha, beta, Ops::lanes);
    return;
  }
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) {
    if (i >= mr) break;  // rows past mr lie outside C: a last row panel stops early
#pragma GCC unroll 2
    for (int v = 0; v < vectors; ++v) {
      const index_t count = nr - v * Ops::lanes;
      if (count > 0) store_tile_vector<Ops>(c + i * ldc + v * Ops::lanes, acc[i][v], alpha, beta,
                                            count);
    }
  }
}

// The rows of a two-vector tile of C are read (beta != 0) and written after the k loop: start
// fetching them now, unless the loop is too short for that to help and C is only written
// (config.hpp). The condition sets the row count: GCC 12 deleted the whole loop of prefetches
// behind an early return. (A template on Ops, as everything here: each instruction-set file
// gets its own copy.)
template <typename Ops>
inline void prefetch_tile(const typename Ops::T* c, index_t ldc, index_t mr,
                          typename Ops::T beta, index_t kc) {
  const index_t rows = beta == typename Ops::T(0) && kc < kGemmPrefetchCMinK ? 0 : mr;
  for (index_t i = 0; i < rows; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 2 * Ops::lanes - 1), _MM_HINT_T0);
  }
}

// Runs steps(r) with the A panel's row stride r: a compile-time 1 for a packed panel (or a
// transposed A read in place), whose row offsets are then constants, not registers.
template <typename Steps>
BACKPROP_ALWAYS_INLINE void with_row_stride(index_t a_row, Steps&& steps) {
  if (a_row == 1)
    steps(std::integral_constant<index_t, 1>{});
  else
    steps(a_row);
}

// C[0:mr, 0:nr] = alpha * A panel (R x kc) @ B panel (kc rows of two vectors) + beta * C, mr <= R.
template <typename Ops, int R>
inline void tile_two_vectors(index_t kc, const PanelOperands<typename Ops::T>& panels,
                             typename Ops::T* c, index_t ldc, typename Ops::T alpha,
                             typename Ops::T beta, index_t mr, index_t nr) {
  using T = typename Ops::T;
  using V = typename Ops::V;
  constexpr index_t W = Ops::lanes;
  V acc[R][2];
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) acc[i][0] = acc[i][1] = Ops::zero();
  // One k step: entry i of the A column at a0[i * r].
  auto step = [&](const T* a0, auto r, const T* b) BACKPROP_LAMBDA_ALWAYS_INLINE {
    const V b0 = Ops::load(b);
    const V b1 = Ops::load(b + W);
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      const V ai = Ops::splat(a0[i * r]);
      acc[i][0] = Ops::fmadd(ai, b0, acc[i][0]);
      acc[i][1] = Ops::fmadd(ai, b1, acc[i][1]);
    }
  };
  prefetch_tile<Ops>(c, ldc, mr, beta, kc);
  const T* a = panels.a;
  const T* b = panels.b;
  const index_t a_k = panels.a_k, b_k = panels.b_k;
  with_row_stride(panels.a_row, [&](auto r) BACKPROP_LAMBDA_ALWAYS_INLINE {
    // Two k steps per pass for tiles of kGemmTwoStepsMinRows rows or more (config.hpp): the
    // same steps in the same order, with the loop's counter and branch once per two. Two
    // loops, as GCC 12 takes no template-dependent count in #pragma GCC unroll.
    if constexpr (R >= kGemmTwoStepsMinRows) {
#pragma GCC unroll 2
      for (index_t p = 0; p < kc; ++p, a += a_k, b += b_k) step(a, r, b);
    } else {
      for (index_t p = 0; p < kc; ++p, a += a_k, b += b_k) step(a, r, b);
    }
  });
  store_tile<Ops, R, 2>(acc, c, ldc, alpha, beta, mr, nr);
}

// C[0:R, 0:2 NR] = alpha * A panel (R x kc) @ two B panels (panels.b, then panels.b_next) +
// beta * C: a last row panel of few rows across two column panels, in one pass over A. The
// lowest tile would run its 2 x 5 or more chains for 2 R useful ones; here all 4 R are useful, and
// with twice as many as one panel would give, the FMA latency is better hidden. Each entry is
// the same chain as in tile_two_vectors, stored the same way: the same bits.
template <typename Ops, int R>
inline void tile_two_panels(index_t kc, const PanelOperands<typename Ops::T>& panels,
                            typename Ops::T* c, index_t ldc, typename Ops::T alpha,
                            typename Ops::T beta) {
  using T = typename Ops::T;
  using V = typename Ops::V;
  constexpr index_t W = Ops::lanes;
  V left[R][2], right[R][2];
#pragma GCC unroll 4
  for (int i = 0; i < R; ++i) left[i][0] = left[i][1] = right[i][0] = right[i][1] = Ops::zero();
  prefetch_tile<Ops>(c, ldc, R, beta, kc);
  prefetch_tile<Ops>(c + 2 * W, ldc, R, beta, kc);
  const T* a = panels.a;
  const T* b = panels.b;
  const T* b_next = panels.b_next;
  const index_t a_k = panels.a_k, b_k = panels.b_k;
  // Each B vector is loaded once and meets the R broadcasts of A: 4 R accumulators, R
  // broadcasts and one B vector live at a time (16 registers on AVX2 at R = 3).
  auto step = [&](const T* a0, auto r, const T* b0, const T* b1) BACKPROP_LAMBDA_ALWAYS_INLINE {
    V ai[R];
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i) ai[i] = Ops::splat(a0[i * r]);
    auto multiply = [&](V (&acc)[R][2], int v, const T* row) BACKPROP_LAMBDA_ALWAYS_INLINE {
      const V bv = Ops::load(row + v * W);
#pragma GCC unroll 4
      for (int i = 0; i < R; ++i) acc[i][v] = Ops::fmadd(ai[i], bv, acc[i][v]);
    };
    multiply(left, 0, b0);
    multiply(left, 1, b0);
    multiply(right, 0, b1);
    multiply(right, 1, b1);
  };
  with_row_stride(panels.a_row, [&](auto r) BACKPROP_LAMBDA_ALWAYS_INLINE {
    for (index_t p = 0; p < kc; ++p, a += a_k, b += b_k, b_next += b_k) step(a, r, b, b_next);
  });
  store_tile<Ops, R, 2>(left, c, ldc, alpha, beta, R, 2 * W);
  store_tile<Ops, R, 2>(right, c + 2 * W, ldc, alpha, beta, R, 2 * W);
}

// A tile two panels wide of mr <= MaxRows rows (tile_two_panels at height mr); the driver
// pairs only panels that short (GemmBlocking's TWO_PANEL_MAX_ROWS).
template <typename Ops, int MaxRows>
inline void run_two_panels(index_t kc, const PanelOperands<typename Ops::T>& panels,
                           typename Ops::T* c, index_t ldc, typename Ops::T alpha,
                           typename Ops::T beta, index_t mr) {
  if constexpr (MaxRows > 1) {
    if (mr < MaxRows) {
      run_two_panels<Ops, MaxRows - 1>(kc, panels, c, ldc, alpha, beta, mr);
      return;
    }
  }
  tile_two_panels<Ops, MaxRows>(kc, panels, c, ldc, alpha, beta);
}

// The tile of a last column panel at most one vector wide (n = 10 floats on AVX-512): half the
// work of the two-vector tile. R accumulator chains alone could wait on the FMA latency, so even
// and odd k steps go to separate accumulators, added at the end.
template <typename Ops, int R>
inline void tile_one_vector(index_t kc, const PanelOperands<typename Ops::T>& panels,
                            typename Ops::T* c, index_t ldc, typename Ops::T alpha,
                            typename Ops::T beta, index_t mr, index_t nr) {
  using T = typename Ops::T;
  using V = typename Ops::V;
  V even[R], odd[R];
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) even[i] = odd[i] = Ops::zero();
  const T* a = panels.a;
  const T* b = panels.b;
  const index_t a_k = panels.a_k, b_k = panels.b_k;
  // One k step into the accumulators x (a last panel is zero padded to a whole vector).
  auto step = [&](const T* a0, auto r, const T* b0, V (&x)[R]) BACKPROP_LAMBDA_ALWAYS_INLINE {
    const V bv = Ops::load(b0);
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) x[i] = Ops::fmadd(Ops::splat(a0[i * r]), bv, x[i]);
  };
  // The pointers move on after each step, so both steps address A's rows alike (with a + a_k
  // in the odd step GCC kept twice the row offsets, and spilled them).
  auto all_steps = [&](auto r) BACKPROP_LAMBDA_ALWAYS_INLINE {
    index_t p = 0;
    for (; p + 1 < kc; p += 2) {
      step(a, r, b, even);
      a += a_k;
      b += b_k;
      step(a, r, b, odd);
      a += a_k;
      b += b_k;
    }
    if (p < kc) step(a, r, b, even);
  };
  with_row_stride(panels.a_row, all_steps);
  V acc[R][1];
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) acc[i][0] = Ops::add(even[i], odd[i]);
  store_tile<Ops, R, 1>(acc, c, ldc, alpha, beta, mr, nr);
}

// The micro-kernel of a path whose tile is the last of Rows high: a row panel of mr rows runs
// the first height in Rows that holds it (a panel of 4 rows does not pay for 14), and a last
// column panel at most one vector wide runs the one-vector tile.
template <typename Ops, int... Rows>
struct RegisterTileKernel;

template <typename Ops, int R>
struct RegisterTileKernel<Ops, R> {
  static_assert(R <= 16, "the tiles' loops are unrolled 16 times");
  static void run(index_t kc, const PanelOperands<typename Ops::T>& panels, typename Ops::T* c,
                  index_t ldc, typename Ops::T alpha, typename Ops::T beta, index_t mr,
                  index_t nr) {
    if (nr <= Ops::lanes)
      tile_one_vector<Ops, R>(kc, panels, c, ldc, alpha, beta, mr, nr);
    else
      tile_two_vectors<Ops, R>(kc, panels, c, ldc, alpha, beta, mr, nr);
  }
};

template <typename Ops, int R, int Next, int... Rest>
struct RegisterTileKernel<Ops, R, Next, Rest...> {
  static void run(index_t kc, const PanelOperands<typename Ops::T>& panels, typename Ops::T* c,
                  index_t ldc, typename Ops::T alpha, typename Ops::T beta, index_t mr,
                  index_t nr) {
    static_assert(R < Next, "tile heights go from low to high");
    if (mr <= R)
      RegisterTileKernel<Ops, R>::run(kc, panels, c, ldc, alpha, beta, mr, nr);
    else
      RegisterTileKernel<Ops, Next, Rest...>::run(kc, panels, c, ldc, alpha, beta, mr, nr);
  }
};

}  // namespace backprop
