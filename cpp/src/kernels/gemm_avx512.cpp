// The AVX-512 micro-kernels, s14x32 and d14x16: 28 of the 32 512-bit registers hold a 14-row
// tile of C, two vectors per row, across the k loop (gemm_register_tile.hpp); panels of at
// most 4 or 8 rows run tiles of that height. Edge columns are read and written through lane
// masks. Built with -mavx512f -mfma (CMakeLists.txt) and called only when the CPU and the OS
// report AVX-512F.
#include <immintrin.h>

#include <cstdint>

#include "backprop/gemm_micro_kernel.hpp"
#include "gemm_narrow_tn.hpp"
#include "gemm_register_tile.hpp"

namespace backprop {
namespace {

constexpr int kAvx512Registers = 32;  // zmm0-zmm31

// The mask of the first `count` lanes, 0 < count < 32.
inline std::uint32_t first_lanes(index_t count) { return (std::uint32_t(1) << count) - 1; }

// Whether the element offsets 0, stride, ..., (lanes - 1) stride fit the 32-bit indices of a
// gather or scatter.
inline bool column_offsets_fit(index_t stride, index_t lanes) {
  return stride >= 0 && stride * (lanes - 1) <= index_t(INT32_MAX);
}
// Those offsets, for 16 and 8 lanes.
inline __m512i column_offsets16(index_t stride) {
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  return _mm512_mullo_epi32(_mm512_set1_epi32(int(stride)), lane);
}
inline __m256i column_offsets8(index_t stride) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_mullo_epi32(_mm256_set1_epi32(int(stride)), lane);
}

// The few vector operations the kernels need, per element type (gemm_register_tile.hpp).
struct Avx512Float {
  using T = float;
  using V = __m512;
  using Mask = __mmask16;
  static constexpr index_t lanes = 16;
  static V zero() { return _mm512_setzero_ps(); }
  static V splat(T x) { return _mm512_set1_ps(x); }
  static V load(const T* p) { return _mm512_loadu_ps(p); }
  static V load_part(const T* p, index_t count) {
    return _mm512_maskz_loadu_ps(Mask(first_lanes(count)), p);
  }
  static void store(T* p, V v) { _mm512_storeu_ps(p, v); }
  static void store_part(T* p, V v, index_t count) {
    _mm512_mask_storeu_ps(p, Mask(first_lanes(count)), v);
  }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  // The first `count` lanes to or from p[0], p[stride], ... (gemm_narrow_tn.hpp).
  static bool column_store_reaches(index_t stride) { return column_offsets_fit(stride, lanes); }
  static V load_column(const T* p, index_t stride, index_t count) {
    return _mm512_mask_i32gather_ps(zero(), Mask(first_lanes(count)), column_offsets16(stride), p,
                                    sizeof(T));
  }
  static void store_column(T* p, index_t stride, V v, index_t count) {
    _mm512_mask_i32scatter_ps(p, Mask(first_lanes(count)), column_offsets16(stride), v, sizeof(T));
  }
};

struct Avx512Double {
  using T = double;
  using V = __m512d;
  using Mask = __mmask8;
  static constexpr index_t lanes = 8;
  static V zero() { return _mm512_setzero_pd(); }
  static V splat(T x) { return _mm512_set1_pd(x); }
  static V load(const T* p) { return _mm512_loadu_pd(p); }
  static V load_part(const T* p, index_t count) {
    return _mm512_maskz_loadu_pd(Mask(first_lanes(count)), p);
  }
  static void store(T* p, V v) { _mm512_storeu_pd(p, v); }
  static void store_part(T* p, V v, index_t count) {
    _mm512_mask_storeu_pd(p, Mask(first_lanes(count)), v);
  }
  static V add(V a, V b) { return _mm512_add_pd(a, b); }
  static V mul(V a, V b) { return _mm512_mul_pd(a, b); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  static bool column_store_reaches(index_t stride) { return column_offsets_fit(stride, lanes); }
  static V load_column(const T* p, index_t stride, index_t count) {
    return _mm512_mask_i32gather_pd(zero(), Mask(first_lanes(count)), column_offsets8(stride), p,
                                    sizeof(T));
  }
  static void store_column(T* p, index_t stride, V v, index_t count) {
    _mm512_mask_i32scatter_pd(p, Mask(first_lanes(count)), column_offsets8(stride), v, sizeof(T));
  }
};

// Tiles of GemmBlocking512's MR rows, or of GemmBlocking512InPlaceA's CUT_MR or CUT_MR / 2 (8 or
// 4) for a panel of that few rows.
template <typename Ops>
using Avx512Kernel = RegisterTileKernel<Ops, GemmBlocking512InPlaceA<typename Ops::T>::CUT_MR / 2,
                                        GemmBlocking512InPlaceA<typename Ops::T>::CUT_MR,
                                        GemmBlocking512<typename Ops::T>::MR>;

}  // namespace

void micro_kernel_avx512_s14x32(index_t kc, const PanelOperands<float>& panels, float* c,
                                index_t ldc, float alpha, float beta, index_t mr, index_t nr) {
  Avx512Kernel<Avx512Float>::run(kc, panels, c, ldc, alpha, beta, mr, nr);
}

void micro_kernel_avx512_d14x16(index_t kc, const PanelOperands<double>& panels, double* c,
                                index_t ldc, double alpha, double beta, index_t mr, index_t nr) {
  Avx512Kernel<Avx512Double>::run(kc, panels, c, ldc, alpha, beta, mr, nr);
}

void narrow_tn_avx512_s(index_t n, index_t rows, index_t k, const float* a, index_t lda,
                        const float* b, index_t ldb, float* c, index_t ldc, float alpha,
                        float beta) {
  narrow_tn_rows_of_width<Avx512Float, kNarrowAvx512Vectors, kAvx512Registers>(
      n, rows, k, a, lda, b, ldb, c, ldc, alpha, beta);
}

void narrow_tn_avx512_d(index_t n, index_t rows, index_t k, const double* a, index_t lda,
                        const double* b, index_t ldb, double* c, index_t ldc, double alpha,
                        double beta) {
  narrow_tn_rows_of_width<Avx512Double, kNarrowAvx512Vectors, kAvx512Registers>(
      n, rows, k, a, lda, b, ldb, c, ldc, alpha, beta);
}

}  // namespace backprop
