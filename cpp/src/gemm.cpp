// Packed, cache-blocked GEMM (the BLIS loop nest around a register-tiled micro-kernel).
#include "backprop/gemm.hpp"

#include <algorithm>

#include "backprop/aligned_buffer.hpp"
#include "backprop/gemm_micro_kernel.hpp"
#include "backprop/threads.hpp"

namespace backprop {
namespace {

// Copies op(A)[ic:ic+mc, pc:pc+kc] into MR-row panels, each laid out k-major
// (panel[p * MR + i]); rows past mc are zero so the micro-kernel never branches.
template <typename T>
void pack_a_panel(T* dst, bool trans_a, const T* a, index_t lda, index_t row0, index_t rows,
                  index_t col0, index_t kc) {
  constexpr index_t MR = GemmBlocking<T>::MR;
  for (index_t p = 0; p < kc; ++p) {
    T* out = dst + p * MR;
    index_t i = 0;
    if (trans_a) {
      const T* src = a + (col0 + p) * lda + row0;
      for (; i < rows; ++i) out[i] = src[i];
    } else {
      const T* src = a + row0 * lda + col0 + p;
      for (; i < rows; ++i) out[i] = src[i * lda];
    }
    for (; i < MR; ++i) out[i] = T(0);
  }
}

// Copies op(B)[pc:pc+kc, jc:jc+nc] into NR-column panels, each laid out k-major
// (panel[p * NR + j]); columns past nc are zero.
template <typename T>
void pack_b_panel(T* dst, bool trans_b, const T* b, index_t ldb, index_t row0, index_t kc,
                  index_t col0, index_t cols) {
  constexpr index_t NR = GemmBlocking<T>::NR;
  for (index_t p = 0; p < kc; ++p) {
    T* out = dst + p * NR;
    index_t j = 0;
    if (trans_b) {
      const T* src = b + col0 * ldb + row0 + p;
      for (; j < cols; ++j) out[j] = src[j * ldb];
    } else {
      const T* src = b + (row0 + p) * ldb + col0;
      for (; j < cols; ++j) out[j] = src[j];
    }
    for (; j < NR; ++j) out[j] = T(0);
  }
}

template <typename T>
void scale_c(index_t m, index_t n, T beta, T* c, index_t ldc) {
  for (index_t i = 0; i < m; ++i) {
    T* row = c + i * ldc;
    if (beta == T(0)) {
      std::fill(row, row + n, T(0));
    } else {
      for (index_t j = 0; j < n; ++j) row[j] *= beta;
    }
  }
}

int gemm_thread_count(index_t m, index_t n, index_t k) {
  const double work = double(m) * double(n) * double(k);
  return work < double(kGemmParallelMinFlops) ? 1 : get_num_threads();
}

}  // namespace

template <typename T>
void gemm(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, T alpha, const T* a,
          index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc) {
  // C (m x n) = alpha * op(A) (m x k) @ op(B) (k x n) + beta * C
  if (m <= 0 || n <= 0) return;
  if (k <= 0 || alpha == T(0)) {
    scale_c(m, n, beta, c, ldc);
    return;
  }
  using Blocks = GemmBlocking<T>;
  constexpr index_t MR = Blocks::MR, NR = Blocks::NR;
  constexpr index_t MC = Blocks::MC, KC = Blocks::KC, NC = Blocks::NC;
  const MicroKernel<T> kernel = select_micro_kernel<T>();

  // One set of packing buffers per calling thread, grown once and reused by every call.
  thread_local AlignedBuffer<T> a_buffer, b_buffer;
  T* const a_packed = a_buffer.reserve(std::size_t(MC * KC));
  T* const b_packed = b_buffer.reserve(std::size_t(KC * NC));

  [[maybe_unused]] const int threads = gemm_thread_count(m, n, k);
#pragma omp parallel num_threads(threads) if (threads > 1)
  for (index_t jc = 0; jc < n; jc += NC) {
    const index_t nc = std::min(NC, n - jc);
    const index_t n_panels = (nc + NR - 1) / NR;
    for (index_t pc = 0; pc < k; pc += KC) {
      const index_t kc = std::min(KC, k - pc);
      // The first k block applies the caller's beta; the later ones add onto it.
      const T beta_block = pc == 0 ? beta : T(1);
#pragma omp for schedule(static)
      for (index_t jp = 0; jp < n_panels; ++jp) {
        const index_t j0 = jp * NR;
        pack_b_panel(b_packed + jp * NR * kc, trans_b, b, ldb, pc, kc, jc + j0,
                     std::min(NR, nc - j0));
      }
      for (index_t ic = 0; ic < m; ic += MC) {
        const index_t mc = std::min(MC, m - ic);
        const index_t m_panels = (mc + MR - 1) / MR;
#pragma omp for schedule(static)
        for (index_t ip = 0; ip < m_panels; ++ip) {
          const index_t i0 = ip * MR;
          pack_a_panel(a_packed + ip * MR * kc, trans_a, a, lda, ic + i0, std::min(MR, mc - i0),
                       pc, kc);
        }
        // Each (column panel, row panel) tile of C belongs to exactly one thread.
#pragma omp for schedule(static) collapse(2)
        for (index_t jp = 0; jp < n_panels; ++jp) {
          for (index_t ip = 0; ip < m_panels; ++ip) {
            const index_t i0 = ip * MR, j0 = jp * NR;
            kernel(kc, a_packed + ip * MR * kc, b_packed + jp * NR * kc,
                   c + (ic + i0) * ldc + jc + j0, ldc, alpha, beta_block, std::min(MR, mc - i0),
                   std::min(NR, nc - j0));
          }
        }
      }
    }
  }
}

template <typename T>
void gemm_ref(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, T alpha, const T* a,
              index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc) {
  // C (m x n) = alpha * op(A) (m x k) @ op(B) (k x n) + beta * C
  for (index_t i = 0; i < m; ++i) {
    for (index_t j = 0; j < n; ++j) {
      T sum = T(0);
      for (index_t p = 0; p < k; ++p) {
        const T a_ip = trans_a ? a[p * lda + i] : a[i * lda + p];
        const T b_pj = trans_b ? b[j * ldb + p] : b[p * ldb + j];
        sum += a_ip * b_pj;
      }
      T& out = c[i * ldc + j];
      out = beta == T(0) ? alpha * sum : alpha * sum + beta * out;
    }
  }
}

#define BACKPROP_INSTANTIATE_GEMM(T)                                                          \
  template void gemm<T>(bool, bool, index_t, index_t, index_t, T, const T*, index_t, const T*, \
                        index_t, T, T*, index_t);                                             \
  template void gemm_ref<T>(bool, bool, index_t, index_t, index_t, T, const T*, index_t,       \
                            const T*, index_t, T, T*, index_t);
BACKPROP_INSTANTIATE_GEMM(float)
BACKPROP_INSTANTIATE_GEMM(double)
#undef BACKPROP_INSTANTIATE_GEMM

}  // namespace backprop
