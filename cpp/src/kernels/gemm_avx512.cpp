// The AVX-512 micro-kernels, s8x32 and d8x16: sixteen 512-bit accumulators hold the 8-row tile
// of C in registers across the k loop (of the 32 registers, the rest take B's two vectors and
// A's broadcasts). Edge columns are written through lane masks. Built with -mavx512f -mfma
// (CMakeLists.txt) and called only when the CPU and the OS report AVX-512F.
#include <immintrin.h>

#include <cstdint>

#include "backprop/gemm_micro_kernel.hpp"
#include "gemm_narrow_tn.hpp"

namespace backprop {
namespace {

// The few vector operations the kernel needs, per element type. Mask bit j covers lane j.
struct Avx512Float {
  using T = float;
  using V = __m512;
  using Mask = __mmask16;
  static constexpr index_t lanes = 16;
  static V zero() { return _mm512_setzero_ps(); }
  static V splat(T x) { return _mm512_set1_ps(x); }
  static V load(const T* p) { return _mm512_loadu_ps(p); }
  static V load(const T* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
  static void store(T* p, V v) { _mm512_storeu_ps(p, v); }
  static void store(T* p, V v, Mask m) { _mm512_mask_storeu_ps(p, m, v); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
};

struct Avx512Double {
  using T = double;
  using V = __m512d;
  using Mask = __mmask8;
  static constexpr index_t lanes = 8;
  static V zero() { return _mm512_setzero_pd(); }
  static V splat(T x) { return _mm512_set1_pd(x); }
  static V load(const T* p) { return _mm512_loadu_pd(p); }
  static V load(const T* p, Mask m) { return _mm512_maskz_loadu_pd(m, p); }
  static void store(T* p, V v) { _mm512_storeu_pd(p, v); }
  static void store(T* p, V v, Mask m) { _mm512_mask_storeu_pd(p, m, v); }
  static V add(V a, V b) { return _mm512_add_pd(a, b); }
  static V mul(V a, V b) { return _mm512_mul_pd(a, b); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
};

// The mask of the first `count` lanes of a vector (all of them from `lanes` on, none below 1).
template <typename Ops>
typename Ops::Mask first_lanes(index_t count) {
  if (count >= Ops::lanes) return typename Ops::Mask(~0u);
  if (count <= 0) return typename Ops::Mask(0);
  return typename Ops::Mask((std::uint32_t(1) << count) - 1);
}

// The lanes of one row of a tile that lie inside C: both vectors whole, or a masked edge.
template <typename Ops>
struct RowLanes {
  typename Ops::Mask lo, hi;
  bool whole;
  explicit RowLanes(index_t nr)
      : lo(first_lanes<Ops>(nr)), hi(first_lanes<Ops>(nr - Ops::lanes)),
        whole(nr == 2 * Ops::lanes) {}
};

// C = alpha * acc + beta * C on the lanes `mask` of one vector of a row, never reading C when
// beta == 0 (masked-off lanes are neither read nor written).
template <typename Ops>
inline void store_vector(typename Ops::T* row, typename Ops::V acc, typename Ops::T alpha,
                         typename Ops::T beta, typename Ops::Mask mask, bool whole) {
  if (alpha != typename Ops::T(1)) acc = Ops::mul(acc, Ops::splat(alpha));
  if (whole) {
    if (beta != typename Ops::T(0)) acc = Ops::fmadd(Ops::splat(beta), Ops::load(row), acc);
    Ops::store(row, acc);
    return;
  }
  if (beta != typename Ops::T(0)) acc = Ops::fmadd(Ops::splat(beta), Ops::load(row, mask), acc);
  Ops::store(row, acc, mask);
}

template <typename Ops>
inline void store_row(typename Ops::T* row, typename Ops::V lo, typename Ops::V hi,
                      typename Ops::T alpha, typename Ops::T beta, const RowLanes<Ops>& lanes) {
  store_vector<Ops>(row, lo, alpha, beta, lanes.lo, lanes.whole);
  if (lanes.whole || lanes.hi != 0)
    store_vector<Ops>(row + Ops::lanes, hi, alpha, beta, lanes.hi, lanes.whole);
}

// The tile of a last column panel at most one vector wide (n = 10 leaves 10 columns): half the
// work of the two-vector kernel. Its eight accumulator chains alone would wait on the FMA
// latency, so even and odd k steps go to separate accumulators, added at the end.
template <typename Ops>
inline void kernel_8x1v(index_t kc, const PanelOperands<typename Ops::T>& panels,
                        typename Ops::T* c, index_t ldc, typename Ops::T alpha,
                        typename Ops::T beta, index_t mr, index_t nr) {
  using T = typename Ops::T;
  using V = typename Ops::V;
  V e0 = Ops::zero(), e1 = Ops::zero(), e2 = Ops::zero(), e3 = Ops::zero();
  V e4 = Ops::zero(), e5 = Ops::zero(), e6 = Ops::zero(), e7 = Ops::zero();
  V o0 = Ops::zero(), o1 = Ops::zero(), o2 = Ops::zero(), o3 = Ops::zero();
  V o4 = Ops::zero(), o5 = Ops::zero(), o6 = Ops::zero(), o7 = Ops::zero();
  const T* a = panels.a;
  const T* b = panels.b;
  const index_t r = panels.a_row, a_k = panels.a_k, b_k = panels.b_k;
  // One k step into the accumulators x0..x7 (a last panel is zero padded to a whole vector).
  auto step = [&](const T* ap, const T* bp, V& x0, V& x1, V& x2, V& x3, V& x4, V& x5, V& x6,
                  V& x7) {
    const V bv = Ops::load(bp);
    x0 = Ops::fmadd(Ops::splat(ap[0]), bv, x0);
    x1 = Ops::fmadd(Ops::splat(ap[r]), bv, x1);
    x2 = Ops::fmadd(Ops::splat(ap[2 * r]), bv, x2);
    x3 = Ops::fmadd(Ops::splat(ap[3 * r]), bv, x3);
    x4 = Ops::fmadd(Ops::splat(ap[4 * r]), bv, x4);
    x5 = Ops::fmadd(Ops::splat(ap[5 * r]), bv, x5);
    x6 = Ops::fmadd(Ops::splat(ap[6 * r]), bv, x6);
    x7 = Ops::fmadd(Ops::splat(ap[7 * r]), bv, x7);
  };
  index_t p = 0;
  for (; p + 1 < kc; p += 2, a += 2 * a_k, b += 2 * b_k) {
    step(a, b, e0, e1, e2, e3, e4, e5, e6, e7);
    step(a + a_k, b + b_k, o0, o1, o2, o3, o4, o5, o6, o7);
  }
  if (p < kc) step(a, b, e0, e1, e2, e3, e4, e5, e6, e7);
  const V acc[8] = {Ops::add(e0, o0), Ops::add(e1, o1), Ops::add(e2, o2), Ops::add(e3, o3),
                    Ops::add(e4, o4), Ops::add(e5, o5), Ops::add(e6, o6), Ops::add(e7, o7)};
  const typename Ops::Mask mask = first_lanes<Ops>(nr);
  for (index_t i = 0; i < mr; ++i)
    store_vector<Ops>(c + i * ldc, acc[i], alpha, beta, mask, nr == Ops::lanes);
}

// C[0:mr, 0:nr] = alpha * A panel (8 x kc) @ B panel (kc rows of 2 vectors) + beta * C.
// Sixteen named accumulators, not an array: GCC keeps an array of vectors on the stack.
template <typename Ops>
inline void kernel_8x2v(index_t kc, const PanelOperands<typename Ops::T>& panels,
                        typename Ops::T* c, index_t ldc, typename Ops::T alpha,
                        typename Ops::T beta, index_t mr, index_t nr) {
  using T = typename Ops::T;
  using V = typename Ops::V;
  constexpr index_t MR = 8, W = Ops::lanes, NR = 2 * W;
  if (nr <= W) {
    kernel_8x1v<Ops>(kc, panels, c, ldc, alpha, beta, mr, nr);
    return;
  }
  V c00 = Ops::zero(), c01 = Ops::zero(), c10 = Ops::zero(), c11 = Ops::zero();
  V c20 = Ops::zero(), c21 = Ops::zero(), c30 = Ops::zero(), c31 = Ops::zero();
  V c40 = Ops::zero(), c41 = Ops::zero(), c50 = Ops::zero(), c51 = Ops::zero();
  V c60 = Ops::zero(), c61 = Ops::zero(), c70 = Ops::zero(), c71 = Ops::zero();
  // One k step: the outer product of a column of the A panel (its eight entries at a0 and
  // multiples of r) and a row of the B panel.
  auto step = [&](const T* a0, index_t r, const T* b) {
    const V b0 = Ops::load(b);
    const V b1 = Ops::load(b + W);
    V ai = Ops::splat(a0[0]);
    c00 = Ops::fmadd(ai, b0, c00);
    c01 = Ops::fmadd(ai, b1, c01);
    ai = Ops::splat(a0[r]);
    c10 = Ops::fmadd(ai, b0, c10);
    c11 = Ops::fmadd(ai, b1, c11);
    ai = Ops::splat(a0[2 * r]);
    c20 = Ops::fmadd(ai, b0, c20);
    c21 = Ops::fmadd(ai, b1, c21);
    ai = Ops::splat(a0[3 * r]);
    c30 = Ops::fmadd(ai, b0, c30);
    c31 = Ops::fmadd(ai, b1, c31);
    ai = Ops::splat(a0[4 * r]);
    c40 = Ops::fmadd(ai, b0, c40);
    c41 = Ops::fmadd(ai, b1, c41);
    ai = Ops::splat(a0[5 * r]);
    c50 = Ops::fmadd(ai, b0, c50);
    c51 = Ops::fmadd(ai, b1, c51);
    ai = Ops::splat(a0[6 * r]);
    c60 = Ops::fmadd(ai, b0, c60);
    c61 = Ops::fmadd(ai, b1, c61);
    ai = Ops::splat(a0[7 * r]);
    c70 = Ops::fmadd(ai, b0, c70);
    c71 = Ops::fmadd(ai, b1, c71);
  };
  // The tile of C is read (beta != 0) and written after the loop: start fetching it now,
  // unless the loop is too short for that to help and C is only written.
  if (beta != T(0) || kc >= kGemmPrefetchCMinK) {
    for (index_t i = 0; i < mr; ++i) {
      _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + NR - 1), _MM_HINT_T0);
    }
  }
  const T* a = panels.a;
  const T* b = panels.b;
  const index_t b_k = panels.b_k;
  if (panels.a_row == 1 && panels.a_k == MR) {  // packed: constant offsets
    for (index_t p = 0; p < kc; ++p, a += MR, b += b_k) step(a, 1, b);
  } else {
    const index_t r = panels.a_row, a_k = panels.a_k;
    for (index_t p = 0; p < kc; ++p, a += a_k, b += b_k) step(a, r, b);
  }
  const RowLanes<Ops> lanes(nr);
  // Rows past mr lie outside C: a last row panel stops early.
  store_row<Ops>(c, c00, c01, alpha, beta, lanes);
  if (mr > 1) store_row<Ops>(c + 1 * ldc, c10, c11, alpha, beta, lanes);
  if (mr > 2) store_row<Ops>(c + 2 * ldc, c20, c21, alpha, beta, lanes);
  if (mr > 3) store_row<Ops>(c + 3 * ldc, c30, c31, alpha, beta, lanes);
  if (mr > 4) store_row<Ops>(c + 4 * ldc, c40, c41, alpha, beta, lanes);
  if (mr > 5) store_row<Ops>(c + 5 * ldc, c50, c51, alpha, beta, lanes);
  if (mr > 6) store_row<Ops>(c + 6 * ldc, c60, c61, alpha, beta, lanes);
  if (mr > 7) store_row<Ops>(c + 7 * ldc, c70, c71, alpha, beta, lanes);
}

}  // namespace

void micro_kernel_avx512_s8x32(index_t kc, const PanelOperands<float>& panels, float* c,
                               index_t ldc, float alpha, float beta, index_t mr, index_t nr) {
  kernel_8x2v<Avx512Float>(kc, panels, c, ldc, alpha, beta, mr, nr);
}

void micro_kernel_avx512_d8x16(index_t kc, const PanelOperands<double>& panels, double* c,
                               index_t ldc, double alpha, double beta, index_t mr, index_t nr) {
  kernel_8x2v<Avx512Double>(kc, panels, c, ldc, alpha, beta, mr, nr);
}

void narrow_tn_avx512_s(index_t n, index_t rows, index_t k, const float* a, index_t lda,
                        const float* b, index_t ldb, float* c, index_t ldc, float alpha,
                        float beta) {
  narrow_tn_rows_of_width<Avx512Float>(n, rows, k, a, lda, b, ldb, c, ldc, alpha, beta);
}

void narrow_tn_avx512_d(index_t n, index_t rows, index_t k, const double* a, index_t lda,
                        const double* b, index_t ldb, double* c, index_t ldc, double alpha,
                        double beta) {
  narrow_tn_rows_of_width<Avx512Double>(n, rows, k, a, lda, b, ldb, c, ldc, alpha, beta);
}

}  // namespace backprop
