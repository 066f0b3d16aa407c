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
// every kernel here and of the narrow one (gemm_narrow_tn.hpp; its copy into C takes the alpha
// step from here and makes the beta step per entry with the same rounding).
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

// The A panel's column at the current k step, entry i at rows(i), and rows.next() to move to the
// following step. Its rows lie a compile-time 1 apart in a packed panel (or a transposed A read
// in place), so their offsets are constants, not registers; an A read in place has its rows
// `stride` values apart.
template <typename T, typename Stride>
class PanelRows {
 public:
  PanelRows(const T* a, Stride stride, index_t k_step) : a_(a), stride_(stride), k_step_(k_step) {}
  BACKPROP_ALWAYS_INLINE T operator()(int i) const { return a_[i * stride_]; }
  BACKPROP_ALWAYS_INLINE void next() { a_ += k_step_; }

 private:
  const T* a_;
  Stride stride_;
  index_t k_step_;
};

// The 14 rows of an A panel read in place (config.hpp, GemmBlocking512InPlaceA): as a[i * stride],
// GCC keeps the 13 row offsets in registers of their own, and x86-64 has too few for them beside
// the tile. Here each row is one addressing mode, a row pointer plus a stride times 1, 2, 4 or 8:
// pointers at rows 0, 3 and 10, strides s and 3s, five registers. The empty asm in next() hides
// them from the optimizer at every step, or it would hoist each row's offset into a register again.
template <typename T>
class InPlaceRows14 {
 public:
  static constexpr int kRows = 14;
  InPlaceRows14(const T* a, index_t stride)
      : s_(stride * index_t(sizeof(T))),
        s3_(3 * s_),
        row0_(reinterpret_cast<const char*>(a)),
        row3_(row0_ + s3_),
        row10_(row0_ + 10 * s_) {}
  BACKPROP_ALWAYS_INLINE T operator()(int i) const {
    switch (i) {
      case 0: return at(row0_, 0);
      case 1: return at(row0_, s_);
      case 2: return at(row0_, 2 * s_);
      case 3: return at(row3_, 0);
      case 4: return at(row0_, 4 * s_);
      case 5: return at(row3_, 2 * s_);
      case 6: return at(row3_, s3_);
      case 7: return at(row3_, 4 * s_);
      case 8: return at(row0_, 8 * s_);
      case 9: return at(row3_, 2 * s3_);
      case 10: return at(row10_, 0);
      case 11: return at(row3_, 8 * s_);
      case 12: return at(row0_, 4 * s3_);
      default: return at(row10_, s3_);  // row 13
    }
  }
  // A read in place steps along its rows, one value per k step.
  BACKPROP_ALWAYS_INLINE void next() {
    row0_ += sizeof(T);
    row3_ += sizeof(T);
    row10_ += sizeof(T);
#if defined(__GNUC__)
    asm("" : "+r"(row0_), "+r"(row3_), "+r"(row10_), "+r"(s_), "+r"(s3_));
#endif
  }

 private:
  static BACKPROP_ALWAYS_INLINE T at(const char* row, index_t offset) {
    return *reinterpret_cast<const T*>(row + offset);
  }
  index_t s_, s3_;
  const char* row0_;
  const char* row3_;
  const char* row10_;
};

// Runs steps(rows) with the R-row A panel's rows (PanelRows, or InPlaceRows14 for 14 rows of an
// untransposed A read in place: one value per k step along each stored row).
template <typename T, int R, typename Steps>
BACKPROP_ALWAYS_INLINE void with_panel_rows(const PanelOperands<T>& panels, Steps&& steps) {
  if (panels.a_row == 1) {
    steps(PanelRows<T, std::integral_constant<index_t, 1>>(panels.a, {}, panels.a_k));
    return;
  }
  if constexpr (R == InPlaceRows14<T>::kRows) {
    if (panels.a_k == 1) {
      steps(InPlaceRows14<T>(panels.a, panels.a_row));
      return;
    }
  }
  steps(PanelRows<T, index_t>(panels.a, panels.a_row, panels.a_k));
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
  // One k step: the A column's entries rows(i) times the B row at b.
  auto step = [&](const auto& rows, const T* b) BACKPROP_LAMBDA_ALWAYS_INLINE {
    const V b0 = Ops::load(b);
    const V b1 = Ops::load(b + W);
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      const V ai = Ops::splat(rows(i));
      acc[i][0] = Ops::fmadd(ai, b0, acc[i][0]);
      acc[i][1] = Ops::fmadd(ai, b1, acc[i][1]);
    }
  };
  prefetch_tile<Ops>(c, ldc, mr, beta, kc);
  const T* b = panels.b;
  const index_t b_k = panels.b_k;
  with_panel_rows<T, R>(panels, [&](auto rows) BACKPROP_LAMBDA_ALWAYS_INLINE {
    // Two k steps per pass for tiles of kGemmTwoStepsMinRows rows or more (config.hpp): the
    // same steps in the same order, with the loop's counter and branch once per two. Two
    // loops, as GCC 12 takes no template-dependent count in #pragma GCC unroll.
    if constexpr (R >= kGemmTwoStepsMinRows) {
#pragma GCC unroll 2
      for (index_t p = 0; p < kc; ++p, rows.next(), b += b_k) step(rows, b);
    } else {
      for (index_t p = 0; p < kc; ++p, rows.next(), b += b_k) step(rows, b);
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
  const T* b = panels.b;
  const T* b_next = panels.b_next;
  const index_t b_k = panels.b_k;
  // Each B vector is loaded once and meets the R broadcasts of A: 4 R accumulators, R
  // broadcasts and one B vector live at a time (16 registers on AVX2 at R = 3).
  auto step = [&](const auto& rows, const T* b0, const T* b1) BACKPROP_LAMBDA_ALWAYS_INLINE {
    V ai[R];
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i) ai[i] = Ops::splat(rows(i));
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
  with_panel_rows<T, R>(panels, [&](auto rows) BACKPROP_LAMBDA_ALWAYS_INLINE {
    for (index_t p = 0; p < kc; ++p, rows.next(), b += b_k, b_next += b_k) step(rows, b, b_next);
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
  const T* b = panels.b;
  const index_t b_k = panels.b_k;
  // One k step into the accumulators x (a last panel is zero padded to a whole vector).
  auto step = [&](const auto& rows, const T* b0, V (&x)[R]) BACKPROP_LAMBDA_ALWAYS_INLINE {
    const V bv = Ops::load(b0);
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) x[i] = Ops::fmadd(Ops::splat(rows(i)), bv, x[i]);
  };
  // The rows move on after each step, so both steps address A's rows alike (with the odd
  // step's rows one k step ahead of the even one's, GCC kept twice the row offsets, and
  // spilled them).
  with_panel_rows<T, R>(panels, [&](auto rows) BACKPROP_LAMBDA_ALWAYS_INLINE {
    index_t p = 0;
    for (; p + 1 < kc; p += 2) {
      step(rows, b, even);
      rows.next();
      b += b_k;
      step(rows, b, odd);
      rows.next();
      b += b_k;
    }
    if (p < kc) step(rows, b, even);
  });
  V acc[R][1];
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) acc[i][0] = Ops::add(even[i], odd[i]);
  store_tile<Ops, R, 1>(acc, c, ldc, alpha, beta, mr, nr);
}

// The tile of a path whose tile is the last of Rows high for mr rows and nr columns: a row panel
// of mr rows runs the first height in Rows that holds it (a panel of 4 rows does not pay for
// 14), and a last column panel at most one vector wide runs the one-vector tile.
// with_tile(mr, nr, body) calls body(tile) with it: a callable taking the micro-kernel's
// arguments (no b_next).
template <typename Ops, int... Rows>
struct RegisterTileHeights;

template <typename Ops, int R>
struct RegisterTileHeights<Ops, R> {
  static_assert(R <= 16, "the tiles' loops are unrolled 16 times");
  template <typename Body>
  static BACKPROP_ALWAYS_INLINE void with_tile(index_t /*mr*/, index_t nr, Body&& body) {
    if (nr <= Ops::lanes)
      body([](auto&&... args) BACKPROP_LAMBDA_ALWAYS_INLINE { tile_one_vector<Ops, R>(args...); });
    else
      body([](auto&&... args)
               BACKPROP_LAMBDA_ALWAYS_INLINE { tile_two_vectors<Ops, R>(args...); });
  }
};

template <typename Ops, int R, int Next, int... Rest>
struct RegisterTileHeights<Ops, R, Next, Rest...> {
  static_assert(R < Next, "tile heights go from low to high");
  template <typename Body>
  static BACKPROP_ALWAYS_INLINE void with_tile(index_t mr, index_t nr, Body&& body) {
    if (mr <= R)
      RegisterTileHeights<Ops, R>::with_tile(mr, nr, body);
    else
      RegisterTileHeights<Ops, Next, Rest...>::with_tile(mr, nr, body);
  }
};

// The micro-kernel of such a path (run), and its column kernel (run_column: a column of tiles of
// one height, gemm_micro_kernel.hpp's TileColumn, its tile chosen once for the whole column).
template <typename Ops, int... Rows>
struct RegisterTileKernel {
  using T = typename Ops::T;
  static void run(index_t kc, const PanelOperands<T>& panels, T* c, index_t ldc, T alpha, T beta,
                  index_t mr, index_t nr) {
    RegisterTileHeights<Ops, Rows...>::with_tile(
        mr, nr, [&](auto tile) BACKPROP_LAMBDA_ALWAYS_INLINE {
          tile(kc, panels, c, ldc, alpha, beta, mr, nr);
        });
  }
  static void run_column(const TileColumn<T>& column) {
    RegisterTileHeights<Ops, Rows...>::with_tile(
        column.mr, column.nr,
        [&](auto tile) BACKPROP_LAMBDA_ALWAYS_INLINE { for_each_tile_call(column, tile); });
  }
};

}  // namespace backprop
