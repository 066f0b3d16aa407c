// The AVX2+FMA micro-kernels, s6x16 and d6x8: twelve 256-bit accumulators hold the 6-row tile of
// C in registers across the k loop. Built with -mavx2 -mfma (CMakeLists.txt) and called only
// when the CPU reports both.
#include <immintrin.h>

#include "backprop/gemm_micro_kernel.hpp"
#include "gemm_narrow_tn.hpp"

namespace backprop {
namespace {

// The few vector operations the kernel needs, per element type.
struct Avx2Float {
  using T = float;
  using V = __m256;
  static constexpr index_t lanes = 8;
  static V zero() { return _mm256_setzero_ps(); }
  static V splat(T x) { return _mm256_set1_ps(x); }
  static V broadcast(const T* p) { return _mm256_broadcast_ss(p); }
  static V load(const T* p) { return _mm256_loadu_ps(p); }
  static void store(T* p, V v) { _mm256_storeu_ps(p, v); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
};

struct Avx2Double {
  using T = double;
  using V = __m256d;
  static constexpr index_t lanes = 4;
  static V zero() { return _mm256_setzero_pd(); }
  static V splat(T x) { return _mm256_set1_pd(x); }
  static V broadcast(const T* p) { return _mm256_broadcast_sd(p); }
  static V load(const T* p) { return _mm256_loadu_pd(p); }
  static void store(T* p, V v) { _mm256_storeu_pd(p, v); }
  static V add(V a, V b) { return _mm256_add_pd(a, b); }
  static V mul(V a, V b) { return _mm256_mul_pd(a, b); }
  static V fmadd(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
};

// Stores one vector of a row: C = alpha * acc + beta * C, never reading C when beta == 0.
template <typename Ops>
inline void store_row_vector(typename Ops::T* row, typename Ops::V acc, typename Ops::T alpha,
                             typename Ops::T beta) {
  if (alpha != typename Ops::T(1)) acc = Ops::mul(acc, Ops::splat(alpha));
  if (beta != typename Ops::T(0)) acc = Ops::fmadd(Ops::splat(beta), Ops::load(row), acc);
  Ops::store(row, acc);
}

// Stores one two-vector row of the tile.
template <typename Ops>
inline void store_row(typename Ops::T* row, typename Ops::V lo, typename Ops::V hi,
                      typename Ops::T alpha, typename Ops::T beta) {
  store_row_vector<Ops>(row, lo, alpha, beta);
  store_row_vector<Ops>(row + Ops::lanes, hi, alpha, beta);
}

// Stores rows 0..mr of a tile one vector wide, its first nr <= lanes columns: C = alpha * acc
// + beta * C, never reading C when beta == 0.
template <typename Ops>
inline void store_narrow(typename Ops::T* c, index_t ldc, const typename Ops::V (&acc)[6],
                         typename Ops::T alpha, typename Ops::T beta, index_t mr, index_t nr) {
  using T = typename Ops::T;
  constexpr index_t W = Ops::lanes;
  for (index_t i = 0; i < mr; ++i) {
    T* row = c + i * ldc;
    if (nr == W) {
      store_row_vector<Ops>(row, acc[i], alpha, beta);
      continue;
    }
    T values[W];
    Ops::store(values, Ops::mul(acc[i], Ops::splat(alpha)));
    for (index_t j = 0; j < nr; ++j)
      row[j] = beta == T(0) ? values[j] : values[j] + beta * row[j];
  }
}

// The tile of a last column panel at most one vector wide (n = 10 in double leaves 2 columns):
// half the work of the two-vector kernel. Its six accumulator chains alone would wait on the
// FMA latency, so even and odd k steps go to separate accumulators, added at the end.
template <typename Ops>
inline void kernel_6x1v(index_t kc, const PanelOperands<typename Ops::T>& panels,
                        typename Ops::T* c, index_t ldc, typename Ops::T alpha,
                        typename Ops::T beta, index_t mr, index_t nr) {
  using T = typename Ops::T;
  using V = typename Ops::V;
  V e0 = Ops::zero(), e1 = Ops::zero(), e2 = Ops::zero(), e3 = Ops::zero(), e4 = Ops::zero(),
    e5 = Ops::zero();
  V o0 = Ops::zero(), o1 = Ops::zero(), o2 = Ops::zero(), o3 = Ops::zero(), o4 = Ops::zero(),
    o5 = Ops::zero();
  const T* a = panels.a;
  const T* b = panels.b;
  const index_t r = panels.a_row, a_k = panels.a_k, b_k = panels.b_k;
  // One k step into the accumulators x0..x5.
  auto step = [&](const T* ap, const T* bp, V& x0, V& x1, V& x2, V& x3, V& x4, V& x5) {
    const V bv = Ops::load(bp);
    x0 = Ops::fmadd(Ops::broadcast(ap), bv, x0);
    x1 = Ops::fmadd(Ops::broadcast(ap + r), bv, x1);
    x2 = Ops::fmadd(Ops::broadcast(ap + 2 * r), bv, x2);
    x3 = Ops::fmadd(Ops::broadcast(ap + 3 * r), bv, x3);
    x4 = Ops::fmadd(Ops::broadcast(ap + 4 * r), bv, x4);
    x5 = Ops::fmadd(Ops::broadcast(ap + 5 * r), bv, x5);
  };
  index_t p = 0;
  for (; p + 1 < kc; p += 2, a += 2 * a_k, b += 2 * b_k) {
    step(a, b, e0, e1, e2, e3, e4, e5);
    step(a + a_k, b + b_k, o0, o1, o2, o3, o4, o5);
  }
  if (p < kc) step(a, b, e0, e1, e2, e3, e4, e5);
  const V acc[6] = {Ops::add(e0, o0), Ops::add(e1, o1), Ops::add(e2, o2),
                    Ops::add(e3, o3), Ops::add(e4, o4), Ops::add(e5, o5)};
  store_narrow<Ops>(c, ldc, acc, alpha, beta, mr, nr);
}

// C[0:mr, 0:nr] = alpha * A panel (6 x kc) @ B panel (kc rows of 2 vectors) + beta * C.
// Twelve named accumulators, not an array: GCC keeps an array of vectors on the stack.
template <typename Ops>
inline void kernel_6x2v(index_t kc, const PanelOperands<typename Ops::T>& panels,
                        typename Ops::T* c, index_t ldc, typename Ops::T alpha,
                        typename Ops::T beta, index_t mr, index_t nr) {
  using T = typename Ops::T;
  using V = typename Ops::V;
  constexpr index_t MR = 6, W = Ops::lanes, NR = 2 * W;
  if (nr <= W) {
    kernel_6x1v<Ops>(kc, panels, c, ldc, alpha, beta, mr, nr);
    return;
  }
  V c00 = Ops::zero(), c01 = Ops::zero(), c10 = Ops::zero(), c11 = Ops::zero();
  V c20 = Ops::zero(), c21 = Ops::zero(), c30 = Ops::zero(), c31 = Ops::zero();
  V c40 = Ops::zero(), c41 = Ops::zero(), c50 = Ops::zero(), c51 = Ops::zero();
  // One k step: the outer product of a column of the A panel (its six entries at a0 and the
  // given offsets) and a row of the B panel.
  auto step = [&](const T* a0, index_t r1, index_t r2, index_t r3, index_t r4, index_t r5,
                  const T* b) {
    const V b0 = Ops::load(b);
    const V b1 = Ops::load(b + W);
    V ai = Ops::broadcast(a0);
    c00 = Ops::fmadd(ai, b0, c00);
    c01 = Ops::fmadd(ai, b1, c01);
    ai = Ops::broadcast(a0 + r1);
    c10 = Ops::fmadd(ai, b0, c10);
    c11 = Ops::fmadd(ai, b1, c11);
    ai = Ops::broadcast(a0 + r2);
    c20 = Ops::fmadd(ai, b0, c20);
    c21 = Ops::fmadd(ai, b1, c21);
    ai = Ops::broadcast(a0 + r3);
    c30 = Ops::fmadd(ai, b0, c30);
    c31 = Ops::fmadd(ai, b1, c31);
    ai = Ops::broadcast(a0 + r4);
    c40 = Ops::fmadd(ai, b0, c40);
    c41 = Ops::fmadd(ai, b1, c41);
    ai = Ops::broadcast(a0 + r5);
    c50 = Ops::fmadd(ai, b0, c50);
    c51 = Ops::fmadd(ai, b1, c51);
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
    for (index_t p = 0; p < kc; ++p, a += MR, b += b_k) step(a, 1, 2, 3, 4, 5, b);
  } else {
    const index_t r = panels.a_row, a_k = panels.a_k;
    for (index_t p = 0; p < kc; ++p, a += a_k, b += b_k) step(a, r, 2 * r, 3 * r, 4 * r, 5 * r, b);
  }
  if (mr == MR && nr == NR) {
    store_row<Ops>(c + 0 * ldc, c00, c01, alpha, beta);
    store_row<Ops>(c + 1 * ldc, c10, c11, alpha, beta);
    store_row<Ops>(c + 2 * ldc, c20, c21, alpha, beta);
    store_row<Ops>(c + 3 * ldc, c30, c31, alpha, beta);
    store_row<Ops>(c + 4 * ldc, c40, c41, alpha, beta);
    store_row<Ops>(c + 5 * ldc, c50, c51, alpha, beta);
    return;
  }
  // Edge tile: compute the full tile into a local buffer, then copy its mr x nr corner.
  T tile[MR * NR];
  store_row<Ops>(tile + 0 * NR, c00, c01, alpha, T(0));
  store_row<Ops>(tile + 1 * NR, c10, c11, alpha, T(0));
  store_row<Ops>(tile + 2 * NR, c20, c21, alpha, T(0));
  store_row<Ops>(tile + 3 * NR, c30, c31, alpha, T(0));
  store_row<Ops>(tile + 4 * NR, c40, c41, alpha, T(0));
  store_row<Ops>(tile + 5 * NR, c50, c51, alpha, T(0));
  for (index_t i = 0; i < mr; ++i) {
    T* row = c + i * ldc;
    for (index_t j = 0; j < nr; ++j)
      row[j] = beta == T(0) ? tile[i * NR + j] : tile[i * NR + j] + beta * row[j];
  }
}

}  // namespace

void micro_kernel_avx2_s6x16(index_t kc, const PanelOperands<float>& panels, float* c,
                             index_t ldc, float alpha, float beta, index_t mr, index_t nr) {
  kernel_6x2v<Avx2Float>(kc, panels, c, ldc, alpha, beta, mr, nr);
}

void micro_kernel_avx2_d6x8(index_t kc, const PanelOperands<double>& panels, double* c,
                            index_t ldc, double alpha, double beta, index_t mr, index_t nr) {
  kernel_6x2v<Avx2Double>(kc, panels, c, ldc, alpha, beta, mr, nr);
}

void narrow_tn_avx2_s(index_t n, index_t rows, index_t k, const float* a, index_t lda,
                      const float* b, index_t ldb, float* c, index_t ldc, float alpha,
                      float beta) {
  narrow_tn_rows_of_width<Avx2Float>(n, rows, k, a, lda, b, ldb, c, ldc, alpha, beta);
}

void narrow_tn_avx2_d(index_t n, index_t rows, index_t k, const double* a, index_t lda,
                      const double* b, index_t ldb, double* c, index_t ldc, double alpha,
                      double beta) {
  narrow_tn_rows_of_width<Avx2Double>(n, rows, k, a, lda, b, ldb, c, ldc, alpha, beta);
}

}  // namespace backprop
