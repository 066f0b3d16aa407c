// The AVX2+FMA micro-kernels, s6x16 and d6x8: twelve 256-bit accumulators hold the 6-row tile of
// C in registers across the k loop (gemm_register_tile.hpp); a panel of at most 5 rows
// (SHORT_MR) runs a 5-row tile, and a last row panel of up to 3 rows can come two column panels
// wide. Edge columns are read and written through AVX2's masked loads and stores. Built with
// -mavx2 -mfma (CMakeLists.txt) and called only when the CPU reports both.
#include <immintrin.h>

#include "backprop/gemm_micro_kernel.hpp"
#include "gemm_narrow_tn.hpp"
#include "gemm_register_tile.hpp"

namespace backprop {
namespace {

constexpr int kAvx2Registers = 16;  // ymm0-ymm15

// The mask of the first `count` lanes of 32-bit (float) or 64-bit (double) values, as AVX2's
// masked loads and stores take it: all bits set in a lane below count, none from it on.
inline __m256i first_lanes_32(index_t count) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(count)), lane);
}
inline __m256i first_lanes_64(index_t count) {
  return _mm256_cmpgt_epi64(_mm256_set1_epi64x(count), _mm256_setr_epi64x(0, 1, 2, 3));
}

// The few vector operations the kernels need, per element type (gemm_register_tile.hpp).
struct Avx2Float {
  using T = float;
  using V = __m256;
  static constexpr index_t lanes = 8;
  static V zero() { return _mm256_setzero_ps(); }
  static V splat(T x) { return _mm256_set1_ps(x); }
  static V load(const T* p) { return _mm256_loadu_ps(p); }
  static V load_part(const T* p, index_t count) {
    return _mm256_maskload_ps(p, first_lanes_32(count));
  }
  static void store(T* p, V v) { _mm256_storeu_ps(p, v); }
  static void store_part(T* p, V v, index_t count) {
    _mm256_maskstore_ps(p, first_lanes_32(count), v);
  }
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
  static V load(const T* p) { return _mm256_loadu_pd(p); }
  static V load_part(const T* p, index_t count) {
    return _mm256_maskload_pd(p, first_lanes_64(count));
  }
  static void store(T* p, V v) { _mm256_storeu_pd(p, v); }
  static void store_part(T* p, V v, index_t count) {
    _mm256_maskstore_pd(p, first_lanes_64(count), v);
  }
  static V add(V a, V b) { return _mm256_add_pd(a, b); }
  static V mul(V a, V b) { return _mm256_mul_pd(a, b); }
  static V fmadd(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
};

// The micro-kernel's tile: MR or SHORT_MR rows, or a short last row panel two column panels wide
// (gemm_register_tile.hpp); a column of tiles has no second panel.
template <typename Ops>
struct Avx2Kernel {
  using T = typename Ops::T;
  using Tiles = RegisterTileKernel<Ops, GemmBlocking<T>::SHORT_MR, GemmBlocking<T>::MR>;
  static void run(index_t kc, const PanelOperands<T>& panels, T* c, index_t ldc, T alpha, T beta,
                  index_t mr, index_t nr) {
    if (panels.b_next != nullptr)
      run_two_panels<Ops, int(GemmBlocking<T>::TWO_PANEL_MAX_ROWS)>(kc, panels, c, ldc, alpha,
                                                                   beta, mr);
    else
      Tiles::run(kc, panels, c, ldc, alpha, beta, mr, nr);
  }
};

}  // namespace

void micro_kernel_avx2_s6x16(index_t kc, const PanelOperands<float>& panels, float* c,
                             index_t ldc, float alpha, float beta, index_t mr, index_t nr) {
  Avx2Kernel<Avx2Float>::run(kc, panels, c, ldc, alpha, beta, mr, nr);
}

void micro_kernel_avx2_d6x8(index_t kc, const PanelOperands<double>& panels, double* c,
                            index_t ldc, double alpha, double beta, index_t mr, index_t nr) {
  Avx2Kernel<Avx2Double>::run(kc, panels, c, ldc, alpha, beta, mr, nr);
}

void column_kernel_avx2_s6x16(const TileColumn<float>& column) {
  Avx2Kernel<Avx2Float>::Tiles::run_column(column);
}

void column_kernel_avx2_d6x8(const TileColumn<double>& column) {
  Avx2Kernel<Avx2Double>::Tiles::run_column(column);
}

void narrow_tn_avx2_s(index_t n, index_t rows, index_t k, const float* a, index_t lda,
                      const float* b, index_t ldb, float* c, index_t ldc, float alpha,
                      float beta) {
  narrow_tn_rows_of_width<Avx2Float, kNarrowAvx2Vectors, kAvx2Registers>(
      n, rows, k, a, lda, b, ldb, c, ldc, alpha, beta);
}

void narrow_tn_avx2_d(index_t n, index_t rows, index_t k, const double* a, index_t lda,
                      const double* b, index_t ldb, double* c, index_t ldc, double alpha,
                      double beta) {
  narrow_tn_rows_of_width<Avx2Double, kNarrowAvx2Vectors, kAvx2Registers>(
      n, rows, k, a, lda, b, ldb, c, ldc, alpha, beta);
}

}  // namespace backprop
