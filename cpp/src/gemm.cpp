// Packed, cache-blocked GEMM (the BLIS loop nest around a register-tiled micro-kernel).
#include "backprop/gemm.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <numeric>
#include <type_traits>

#if defined(__SSE2__)
#include <immintrin.h>
#endif
// 256-bit transposes in a function built for AVX2 (a target attribute), called when the active
// path has it.
#if defined(__SSE2__) && (defined(__GNUC__) || defined(__clang__))
#define BACKPROP_AVX2_TRANSPOSES 1
#else
#define BACKPROP_AVX2_TRANSPOSES 0
#endif

#include "backprop/aligned_buffer.hpp"
#include "backprop/checks.hpp"
#include "backprop/gemm_micro_kernel.hpp"
#include "backprop/stealing_shares.hpp"
#include "backprop/threads.hpp"

namespace backprop {
namespace {

// How many GEMMs have split by k blocks (gemm_k_split_count).
std::atomic<std::uint64_t> k_split_calls{0};
// How many pairs of column panels threads have taken from another's share
// (gemm_stolen_pairs_count).
std::atomic<std::uint64_t> stolen_pairs{0};

#if defined(__SSE2__)
// Transposes a 4 x 4 float or 2 x 2 double block (src rows w_stride apart, dst rows W apart)
// in 128-bit registers.
inline void transpose_128(float* dst, index_t W, const float* src, index_t w_stride) {
  __m128 r0 = _mm_loadu_ps(src + 0 * w_stride);
  __m128 r1 = _mm_loadu_ps(src + 1 * w_stride);
  __m128 r2 = _mm_loadu_ps(src + 2 * w_stride);
  __m128 r3 = _mm_loadu_ps(src + 3 * w_stride);
  _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
  _mm_storeu_ps(dst + 0 * W, r0);
  _mm_storeu_ps(dst + 1 * W, r1);
  _mm_storeu_ps(dst + 2 * W, r2);
  _mm_storeu_ps(dst + 3 * W, r3);
}

inline void transpose_128(double* dst, index_t W, const double* src, index_t w_stride) {
  const __m128d r0 = _mm_loadu_pd(src);
  const __m128d r1 = _mm_loadu_pd(src + w_stride);
  _mm_storeu_pd(dst, _mm_unpacklo_pd(r0, r1));
  _mm_storeu_pd(dst + W, _mm_unpackhi_pd(r0, r1));
}

#if BACKPROP_AVX2_TRANSPOSES
// Transposes an 8 x 8 float block (src rows w_stride apart, dst rows W apart) in 256-bit
// registers: pairs of rows interleaved, then pairs of pairs, then the low 128-bit halves of rows
// 0-3 and 4-7 joined (k 0-3), and the high ones (k 4-7).
__attribute__((target("avx2"))) inline void transpose_256(float* dst, index_t W, const float* src,
                                                           index_t w_stride) {
  __m256 r[8], t[8], s[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * w_stride);
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);      // k 0, 1 | 4, 5 of rows i, i + 1
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);  // k 2, 3 | 6, 7
  }
  for (int i = 0; i < 8; i += 4) {
    s[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);          // k 0 | 4 of rows i..i+3
    s[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);      // k 1 | 5
    s[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);  // k 2 | 6
    s[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);  // k 3 | 7
  }
  for (int q = 0; q < 4; ++q) {
    _mm256_storeu_ps(dst + q * W, _mm256_permute2f128_ps(s[q], s[q + 4], 0x20));
    _mm256_storeu_ps(dst + (q + 4) * W, _mm256_permute2f128_ps(s[q], s[q + 4], 0x31));
  }
}

// The same for a 4 x 4 double block (256-bit registers).
__attribute__((target("avx2"))) inline void transpose_256(double* dst, index_t W,
                                                           const double* src, index_t w_stride) {
  __m256d r[4];
  for (int i = 0; i < 4; ++i) r[i] = _mm256_loadu_pd(src + i * w_stride);
  const __m256d t0 = _mm256_unpacklo_pd(r[0], r[1]), t1 = _mm256_unpackhi_pd(r[0], r[1]);
  const __m256d t2 = _mm256_unpacklo_pd(r[2], r[3]), t3 = _mm256_unpackhi_pd(r[2], r[3]);
  _mm256_storeu_pd(dst + 0 * W, _mm256_permute2f128_pd(t0, t2, 0x20));
  _mm256_storeu_pd(dst + 1 * W, _mm256_permute2f128_pd(t1, t3, 0x20));
  _mm256_storeu_pd(dst + 2 * W, _mm256_permute2f128_pd(t0, t2, 0x31));
  _mm256_storeu_pd(dst + 3 * W, _mm256_permute2f128_pd(t1, t3, 0x31));
}
#endif

// pack_transposed's blocks of k steps `Bytes` bytes deep: rows in blocks of that many values,
// then of 16 bytes' worth, then one by one with the padding. 32-byte blocks need AVX2.
template <index_t Bytes, index_t W, typename T>
BACKPROP_ALWAYS_INLINE index_t pack_transposed_blocks(T* __restrict dst, const T* __restrict src,
                                                      index_t w_stride, index_t kc,
                                                      index_t width) {
  constexpr index_t L = Bytes / sizeof(T), S = 16 / sizeof(T);
  index_t p = 0;
  for (; p + L <= kc; p += L) {
    index_t w = 0;
#if BACKPROP_AVX2_TRANSPOSES
    if constexpr (L > S)
      for (; w + L <= width; w += L)
        transpose_256(dst + p * W + w, W, src + w * w_stride + p, w_stride);
#endif
    for (; w + S <= width; w += S)
      for (index_t q = 0; q < L; q += S)
        transpose_128(dst + (p + q) * W + w, W, src + w * w_stride + p + q, w_stride);
    for (; w < W; ++w)  // rows left over when S does not divide the width, and the padding
      for (index_t q = 0; q < L; ++q)
        dst[(p + q) * W + w] = w < width ? src[w * w_stride + p + q] : T(0);
  }
  return p;
}

#if BACKPROP_AVX2_TRANSPOSES
// flatten: every transpose inlined here, where AVX2 is on (an inline function built for AVX2
// is not inlined into a caller built without it, and one per 8 x 8 block was called).
template <index_t W, typename T>
__attribute__((target("avx2"), flatten)) index_t pack_transposed_avx2(T* __restrict dst,
                                                                       const T* __restrict src,
                                                                       index_t w_stride,
                                                                       index_t kc,
                                                                       index_t width) {
  return pack_transposed_blocks<32, W>(dst, src, w_stride, kc, width);
}
#endif
#endif

// dst[p * W + w] = src[w * w_stride + p] for the first `width` rows of a strip whose k values
// lie together in memory, and zero for the rows past them: a transpose, done in register blocks
// on x86-64 rather than one strided load per value (those took 10% of a 256 x 4096 x 4096 NT
// product): 8 x 8 float (4 x 4 double) when the active path has AVX2, else 4 x 4 (2 x 2). Two
// AVX-512 threads, three alternated rounds, GFLOP/s, 4 x 4 -> 8 x 8: 256 x 4096 x 4096 NT float
// 251-255 -> 261-264, double 102-118 -> 119-124; 128 x 512 x 512 NT 281-283 -> 285-289; 64 x 256
// x 256 NT 238-248 -> 247-258.
template <index_t W, typename T>
void pack_transposed(T* __restrict dst, const T* __restrict src, index_t w_stride, index_t kc,
                     index_t width) {
  index_t p = 0;
#if defined(__SSE2__)
#if BACKPROP_AVX2_TRANSPOSES
  if (active_isa() != Isa::generic) p = pack_transposed_avx2<W>(dst, src, w_stride, kc, width);
#endif
  p += pack_transposed_blocks<16, W>(dst + p * W, src + p, w_stride, kc - p, width);
#endif
  for (; p < kc; ++p)
    for (index_t w = 0; w < W; ++w) dst[p * W + w] = w < width ? src[w * w_stride + p] : T(0);
}

// Copies a width x kc strip of a matrix into one k-major panel, panel[p * W + w] =
// src[w * w_stride + p * k_stride], with entries past `width` zero so the micro-kernel never
// branches. A strip whose k values lie together (op(A) untransposed, op(B) transposed) is
// transposed in registers when it is at least W - 1 wide (a row panel of SHORT_MR rows is one
// short); the rest are last, partial strips (packing along the rows covers the other full ones,
// pack_rows_into_panels).
template <index_t W, typename T>
void pack_panel(T* __restrict dst, const T* __restrict src, index_t w_stride, index_t k_stride,
                index_t width, index_t kc) {
  if (width >= W - 1 && k_stride == 1) {
    pack_transposed<W>(dst, src, w_stride, kc, width);
    return;
  }
  // The zeros go in as whole rows of W (a loop from `width` became a call to memset for each
  // k step), then the values over them.
  if (w_stride == 1) {  // each k step's values lie side by side
    for (index_t p = 0; p < kc; ++p) {
      T* const row = dst + p * W;
      for (index_t w = 0; w < W; ++w) row[w] = T(0);
      for (index_t w = 0; w < width; ++w) row[w] = src[p * k_stride + w];
    }
    return;
  }
  std::fill(dst, dst + kc * W, T(0));
  for (index_t w = 0; w < width; ++w)  // along each strip row, stored along k (k_stride 1 here)
    for (index_t p = 0; p < kc; ++p) dst[p * W + w] = src[w * w_stride + p * k_stride];
}

// Spreads stored rows [first, first + rows) of a matrix (row stride ld), `count` values each, over
// the panels they cross: panel q (at dst + q * panel_size) gets values [q * W, q * W + W) of row p
// as its row p, and a last partial panel, laid out last_width wide, gets the rest, zero padded. The
// panels of a matrix stored row-major along them are packed this way, so memory is read left to
// right (going down one panel at a time touches a new page on every row when the rows are long).
// Rows go kPackRowGroup at a time, panel after panel: each panel then gets that many rows in one
// run of stores, where one row at a time stored W values (a cache line of float B) in each panel,
// panel_size bytes apart (16 KiB at kc = 256: all in one L1 set). Float NN, one thread, B of 16
// MiB, alternated runs: 256 x 4096 x 4096 72-77 -> 76-80 GFLOP/s, 256 x 1024 x 4096 78-81 -> 82-84;
// mnist's 128 x 512 x 784 and x 512 (B of 1.5 and 1 MiB, in cache) and the A^T packing of the
// weight gradients' TN products within the noise. Groups of 8 gained about as much; 16 and 32 rows
// (as many read streams) lost 3-10%.
constexpr index_t kPackRowGroup = 4;

// Cloned per instruction set (config.hpp): built for the baseline alone, it copied with 16-byte
// moves.
template <index_t W, typename T>
BACKPROP_ELEMENTWISE_CLONES void pack_rows_into_panels(T* __restrict dst, index_t panel_size,
                                                       index_t first, index_t rows,
                                                       const T* __restrict src, index_t ld,
                                                       index_t count, index_t last_width) {
  const index_t full = count / W, rest = count - full * W;
  for (index_t p0 = first; p0 < first + rows; p0 += kPackRowGroup) {
    const index_t p1 = std::min(first + rows, p0 + kPackRowGroup);
    for (index_t q = 0; q < full; ++q)
      for (index_t p = p0; p < p1; ++p)
        for (index_t w = 0; w < W; ++w)
          dst[q * panel_size + p * W + w] = src[p * ld + q * W + w];
    if (rest == 0) continue;
    for (index_t p = p0; p < p1; ++p) {
      T* const last = dst + full * panel_size + p * last_width;
      const T* const from = src + p * ld + full * W;
      for (index_t w = 0; w < last_width; ++w) last[w] = w < rest ? from[w] : T(0);
    }
  }
}

// The width a panel of B with `cols` columns is packed at (its row stride, the kernel's b_k):
// NR, or NR / 2 for a last panel at most that wide, whose tile the kernels compute one vector
// wide. Padding it to NR would double what the kernel streams through L1 for nothing: 128 x 16
// x 512 float on the AVX-512 tile (32 wide) ran at 70 GFLOP/s, against 140 for the kernel alone.
template <typename Blocks>
constexpr index_t packed_width(index_t cols) {
  return cols <= Blocks::NR / 2 ? Blocks::NR / 2 : Blocks::NR;
}

// Packs op(A)[row0:row0+rows, col0:col0+kc] into one MR-row panel.
template <typename Blocks, typename T>
void pack_a_panel(T* dst, bool trans_a, const T* a, index_t lda, index_t row0, index_t rows,
                  index_t col0, index_t kc) {
  constexpr index_t MR = Blocks::MR;
  if (trans_a)
    pack_panel<MR>(dst, a + col0 * lda + row0, 1, lda, rows, kc);
  else
    pack_panel<MR>(dst, a + row0 * lda + col0, lda, 1, rows, kc);
}

// Packs op(B)[row0:row0+kc, col0:col0+cols] into one panel, packed_width(cols) wide.
template <typename Blocks, typename T>
void pack_b_panel(T* dst, bool trans_b, const T* b, index_t ldb, index_t row0, index_t kc,
                  index_t col0, index_t cols) {
  constexpr index_t NR = Blocks::NR;
  const T* const src = trans_b ? b + col0 * ldb + row0 : b + row0 * ldb + col0;
  const index_t w_stride = trans_b ? ldb : 1, k_stride = trans_b ? 1 : ldb;
  if (packed_width<Blocks>(cols) == NR)
    pack_panel<NR>(dst, src, w_stride, k_stride, cols, kc);
  else
    pack_panel<NR / 2>(dst, src, w_stride, k_stride, cols, kc);
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

// Every row of the rows x cols block of C = `row`: where a product with a bias starts.
// Tiles NR columns wide take rows of fixed length (straight vector code, as in activations.cpp).
template <index_t NR, typename T>
void fill_rows(T* __restrict c, index_t ldc, const T* __restrict row, index_t rows,
               index_t cols) {
  if (cols == NR) {
    for (index_t i = 0; i < rows; ++i)
      for (index_t j = 0; j < NR; ++j) c[i * ldc + j] = row[j];
    return;
  }
  for (index_t i = 0; i < rows; ++i)
    for (index_t j = 0; j < cols; ++j) c[i * ldc + j] = row[j];
}

// The caller's epilogue with its step's tile kernel looked up once per call.
template <typename T>
struct ReadyEpilogue : GemmEpilogue<T> {
  using Step = typename GemmEpilogue<T>::Step;
  ForwardTileFn<T> forward_tile = nullptr;
  BackwardTileFn<T> backward_tile = nullptr;

  explicit ReadyEpilogue(const GemmEpilogue<T>& given) : GemmEpilogue<T>(given) {
    if (given.step == Step::forward) forward_tile = forward_tile_function<T>(given.act.kind);
    if (given.step == Step::backward)
      backward_tile = backward_tile_function<T>(given.act.kind, given.y != nullptr);
  }

  // The bias alone, without the step: what starts a product whose step comes later.
  ReadyEpilogue bias_only() const {
    GemmEpilogue<T> start;
    start.bias = this->bias;
    return ReadyEpilogue(start);
  }

  ReadyEpilogue shifted(index_t row, index_t col) const {
    ReadyEpilogue part = *this;
    static_cast<GemmEpilogue<T>&>(part) = GemmEpilogue<T>::shifted(row, col);
    return part;
  }

  // The step on the finished rows x cols block of C at (row, col).
  void finish(T* c, index_t ldc, index_t row, index_t col, index_t rows, index_t cols) const {
    const index_t at = row * this->ld + col;
    if (forward_tile != nullptr) {
      T* const y = this->y + at;
      forward_tile(y, this->ld, c, ldc, rows, cols, this->act.alpha);
      if (this->largest_output != nullptr)
        raise_to(*this->largest_output, largest_magnitude_bits(y, this->ld, rows, cols));
    } else if (backward_tile != nullptr) {
      backward_tile(c, ldc, this->u + at, this->y != nullptr ? this->y + at : nullptr, this->ld,
                    rows, cols, this->act.alpha);
    }
  }
};

// The block size that splits extent into the fewest blocks of at most max_block, all of about
// the same size (a multiple of unit): 784 = 4 x 196, not 3 x 256 + 16, whose thin last block
// would repack the other operand for little work.
index_t balanced_block(index_t extent, index_t max_block, index_t unit) {
  const index_t count = (extent + max_block - 1) / max_block;
  const index_t size = (extent + count - 1) / count;
  return std::min(max_block, (size + unit - 1) / unit * unit);
}

// How many L1 sets the rows of a matrix stride_bytes apart cycle through (kL1Sets when the
// stride is not a whole number of lines).
index_t l1_sets_cycled(index_t stride_bytes) {
  if (stride_bytes % kL1SetStrideBytes != 0) return kL1Sets;
  return kL1Sets / std::gcd(stride_bytes / kL1SetStrideBytes, kL1Sets);
}

// The most column panels for which a tile family reads A in place, untransposed and
// transposed (config.hpp). The AVX-512 family reads an untransposed A only through its
// in-place family (InPlaceFamily below).
template <typename Blocks>
struct AInPlaceLimits {
  static constexpr index_t untransposed = kGemmDirectAMaxPanels;
  static constexpr index_t transposed = kGemmDirectAMaxPanels;
};
template <typename T>
struct AInPlaceLimits<GemmBlocking512<T>> {
  static constexpr index_t untransposed = 0;
  static constexpr index_t transposed = kGemmDirectTransposedAMaxPanels512;
};

// Whether the row panels of op(A) are read where they lie: with few column panels to share a
// packed copy, unless a transposed A's rows (one per k step) crowd into fewer L1 sets than
// there are column panels (config.hpp).
template <typename Blocks, typename T>
bool read_a_in_place(bool trans_a, index_t lda, index_t n) {
  const index_t column_panels = (n + Blocks::NR - 1) / Blocks::NR;
  const index_t limit = trans_a ? AInPlaceLimits<Blocks>::transposed
                                : AInPlaceLimits<Blocks>::untransposed;
  if (column_panels > limit) return false;
  if (!trans_a) return true;  // each row of A is read along k, line after line
  const index_t sets = l1_sets_cycled(lda * index_t(sizeof(T)));
  return sets >= 2 && column_panels <= sets;
}

// The tile family of a GEMM that reads an untransposed A in place: the family's own, except on
// the AVX-512 path, which cuts such an A's blocks into panels of 14, 8 and 4 rows, each read in
// place (config.hpp, GemmBlocking512InPlaceA). A transposed A has each k step's values side by
// side, at constant offsets, and the family's own tiles read it in place.
template <typename Blocks>
struct InPlaceFamily {
  using type = Blocks;
};
template <typename T>
struct InPlaceFamily<GemmBlocking512<T>> {
  using type = GemmBlocking512InPlaceA<T>;
};

// Whether a GEMM on this family goes to its in-place family instead.
template <typename Blocks, typename T>
bool takes_in_place_family(bool trans_a, index_t lda, index_t n) {
  using InPlace = typename InPlaceFamily<Blocks>::type;
  return !std::is_same_v<InPlace, Blocks> && !trans_a &&
         read_a_in_place<InPlace, T>(trans_a, lda, n);
}

// The threads a GEMM runs on (config.hpp): one below the burst threshold, all from the plain
// one, and all in between only in a burst of calls; one at any size while a late thread has
// paused splits (call_burst.hpp, TeamCall). Splitting never changes C's bits, so neither does
// the timing of the calls.
template <typename T>
TeamCall gemm_team_call(index_t m, index_t n, index_t k) {
  const double work = double(m) * double(n) * double(k);
  const bool too_small = work < double(gemm_burst_min_flops<T>());
  return TeamCall(too_small ? 1 : get_num_threads(),
                  work < double(gemm_parallel_min_flops<T>()));
}

// The row panels of a block of rows: MR high, the last one lower. When its kernels have a tile
// of SHORT_MR = MR - 1 rows (GemmBlocking), a block that would end in a low panel is cut into
// panels of MR and SHORT_MR rows instead, if it has the rows: per row the 5-row tile is as fast
// as the 6-row one, while a low last panel costs nearly a whole one, or pairs two column panels
// in a tile that is still slower (TWO_PANEL_MAX_ROWS). One thread, AVX2 on Zen 2, float GFLOP/s,
// operands on cache lines: 64 x 256 x 256 (ten panels of 6 rows and one of 4 -> nine of 6 and
// two of 5) 85-94 -> 96-99, 32 x 128 x 784 (6, 6, 6, 6, 6, 2 -> 6, 6, 5, 5, 5, 5) 89-91 ->
// 91-94, 32 x 10 x 128 34 -> 39, 32 x 128 x 10 NT 40 -> 44. Each panel keeps its MR-row slot in
// the packing buffer. A family whose kernels read A in place in tiles of CUT_MR and CUT_MR / 2
// rows as well as MR (GemmBlocking512InPlaceA: 14, 8 and 4) cuts a block into panels of those
// heights where it can, and reads every one in place (config.hpp); its panels may then outnumber
// the buffer's slots, but none is packed.
template <typename Blocks>
class RowPanels {
 public:
  // may_split: whether the rows may be cut (not an A^T packed along its rows); in_place: whether
  // A is read in place, as the cut into lower tiles needs (its panels may outnumber the packing
  // buffer's slots).
  RowPanels(index_t rows, bool may_split, bool in_place) : rows_(rows) {
    counts_[0] = (rows + MR - 1) / MR;
    if (!may_split) return;
    if constexpr (CUT_MR > 0) {
      if (in_place) cut_into_lower_tiles();
    } else if constexpr (SHORT_MR > 0) {
      const index_t short_panels = counts_[0] * MR - rows;
      if (short_panels > 0 && rows >= SHORT_MR * counts_[0]) {
        counts_[1] = short_panels;
        counts_[0] -= short_panels;
        heights_[1] = SHORT_MR;
      }
    }
  }
  index_t count() const { return counts_[0] + counts_[1] + counts_[2]; }
  index_t first_row(index_t panel) const {
    index_t first = 0;
    for (int group = 0; group < 3; ++group) {
      if (panel <= counts_[group]) return first + panel * heights_[group];
      first += counts_[group] * heights_[group];
      panel -= counts_[group];
    }
    return first;
  }
  index_t height(index_t panel) const {
    int group = 0;
    for (index_t later = panel; group < 2 && later >= counts_[group]; ++group)
      later -= counts_[group];
    return std::min(heights_[group], rows_ - first_row(panel));
  }
  // Whether the family's kernels read exactly this many rows of A: a panel that high can be
  // read in place; a lower one is packed with zero rows below it.
  static bool tile_height(index_t rows) {
    return rows == MR || (SHORT_MR > 0 && rows == SHORT_MR) ||
           (CUT_MR > 0 && (rows == CUT_MR || rows == CUT_MR / 2));
  }

 private:
  static constexpr index_t MR = Blocks::MR, SHORT_MR = Blocks::SHORT_MR, CUT_MR = Blocks::CUT_MR;
  static_assert(SHORT_MR == 0 || SHORT_MR == MR - 1, "a short tile is one row lower, or none");
  static_assert(SHORT_MR == 0 || CUT_MR == 0, "a family cuts its blocks one way");
  static_assert(CUT_MR == 0 || (CUT_MR < MR && CUT_MR % 2 == 0), "lower tiles of 8 and 4");

  // Panels of MR rows, as many as leave a multiple of CUT_MR / 2 rows, then of CUT_MR rows and
  // at most one of CUT_MR / 2: none lower than a tile, none packed. A block with no such cut (an
  // odd number of rows, or 2, 6 or 10) keeps its panels of MR and a lower last one.
  void cut_into_lower_tiles() {
    constexpr index_t low = CUT_MR / 2;
    for (index_t tall = rows_ / MR; tall >= 0 && tall > rows_ / MR - low; --tall) {
      const index_t rest = rows_ - tall * MR;
      if (rest % low != 0) continue;
      counts_[0] = tall;
      counts_[1] = rest / CUT_MR;
      counts_[2] = rest % CUT_MR / low;
      heights_[1] = CUT_MR;
      heights_[2] = low;
      return;
    }
  }

  index_t rows_;
  index_t counts_[3] = {0, 0, 0};  // panels of heights_[0], then [1], then [2]
  index_t heights_[3] = {MR, MR, MR};
};

// Waits for the other threads of the team; a team of one runs no OpenMP call at all, since
// even a one-thread team's barrier can cost a system call.
inline void team_barrier([[maybe_unused]] int parts) {
  if (parts > 1) {
#pragma omp barrier
  }
}

// With few rows of A each element of B is used only a few times, and copying B into panels
// would cost more than reading it where it lies (row-major, NR values of a row together), as
// long as B is small enough to stay in cache between row panels.
template <typename T>
bool reads_b_in_place(bool trans_b, index_t m, index_t n, index_t k, index_t ldb) {
  return !trans_b && m <= kGemmDirectBMaxRows &&
         k * n * index_t(sizeof(T)) <= kGemmDirectBMaxBytes &&
         ldb * index_t(sizeof(T)) <= kGemmDirectBMaxRowBytes;
}

// Whether each thread of a shared-block GEMM packs the column panels of an untransposed B that
// its tiles take (gemm_team) rather than a share of the rows of every panel: when the panels
// divide evenly between the threads, or are enough that one more for a thread costs little.
// Three panels on two threads pack 2:1, and the other thread waits: 64 x 96 x 30000 TN float
// 143-148 -> 120 GFLOP/s, five panels (100 x 160 x 10000 TN) 167 -> 148.
inline bool packs_own_panels(index_t n_panels, int parts) {
  return n_panels % parts == 0 || n_panels >= 8 * index_t(parts);
}

// Whether a one-thread blocked GEMM packs each k block of A once for all its column blocks
// (loops k block, then column block) rather than once per column block (column block, then k
// block): on the families that run column panels fastest, when there are several column blocks
// and A's whole k block (m x KC, in a buffer of its own) stays in L2 beside B's block. Two
// AVX-512 threads (each a one-thread slab of 2048 columns), four alternated rounds, GFLOP/s:
// double 256 x 4096 x 4096 NN 122-131 -> 129-138, NT 120-126 -> 126-132 (A was packed four
// times, once per 512-column block); float (two 1024-column blocks) within the noise, NN 254-278
// -> 263-273, NT 251-276 -> 252-265.
template <typename Blocks, typename T>
bool packs_a_once_per_k_block(index_t m, index_t n, bool direct_a, int parts) {
  return Blocks::COLUMN_PANELS_FASTEST && parts == 1 && !direct_a && n > Blocks::NC &&
         m * Blocks::KC * index_t(sizeof(T)) <= kGemmPackedAOnceMaxBytes;
}

// The blocked GEMM on m, n, k >= 1, run by part `part` of a team of `parts` threads: the team
// shares each packed block of B and of A and splits the tiles of C (a barrier after each
// packing step and after each block of tiles, before the buffers are packed again). a_once
// (packs_a_once_per_k_block, one thread): a_all holds every row block of a k block of A.
// pair_shares (a team of several, or null): a block of at least two column panel pairs per
// thread hands them out through it, rebalancing themselves (stealing_shares.hpp), rather than as
// a fixed share of the tiles; a narrower block keeps the fixed share, whose single tiles divide
// few panels evenly.
template <typename Blocks, typename T>
void gemm_team(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, index_t k_block,
               T alpha, const T* a, index_t lda, const T* b, index_t ldb, T beta, T* c,
               index_t ldc,
               const ReadyEpilogue<T>& epilogue, const TileKernels<T>& kernels, T* a_all,
               T* b_packed, bool a_once, StealingShares* pair_shares, int part, int parts) {
  constexpr index_t MR = Blocks::MR, NR = Blocks::NR;
  const index_t MC = balanced_block(m, Blocks::MC, MR);
  // C's entries sum in k blocks k_block deep (gemm_k_block: the same on every family and thread
  // count), and B and A are packed in blocks of as many of those as fit in the family's KC: a
  // product asked for more blocks than KC needs (deep's 256-deep layers, two of 128) packs its
  // operands once and runs each tile's kernel once per k block, on a tile of C still in L1,
  // rather than passing over all of C once per k block. The bits are the same either way.
  static_assert(Blocks::KC == GemmBlocking<float>::KC,
                "gemm_k_block's blocks (at most KC deep) fit every family's packing buffers");
  const index_t KC = k_block * std::max<index_t>(1, Blocks::KC / k_block);
  const index_t NC = balanced_block(n, Blocks::NC, NR);

  const bool direct_b = reads_b_in_place<T>(trans_b, m, n, k, ldb);
  static_assert(Blocks::MC % Blocks::MR == 0, "a row block is whole row panels");
  static_assert(!(Blocks::SHARE_PACKED_BLOCKS && Blocks::COLUMN_PANELS_FASTEST),
                "a family that shares packed blocks packs B for tiles run row panels fastest");
  const bool direct_a = read_a_in_place<Blocks, T>(trans_a, lda, n);
  // The block (jc, pc): B's rows pc.. and columns jc.., and its tiles of C. Each entry of C
  // takes its k blocks in increasing pc order in either loop order below: the same bits.
  auto block = [&](index_t jc, index_t pc) {
    const index_t nc = std::min(NC, n - jc);
    const index_t n_panels = (nc + NR - 1) / NR;
    const index_t n_pairs = (n_panels + 1) / 2;
    StealingShares* const shares =
        pair_shares != nullptr && n_pairs >= 2 * index_t(parts) ? pair_shares : nullptr;
    const index_t kc = std::min(KC, k - pc);
    // The first k block applies the caller's beta (or starts from the epilogue's bias); the
    // later ones add onto it.
    const bool bias_start = pc == 0 && epilogue.bias != nullptr;
    const T tile_beta = pc == 0 && !bias_start ? beta : T(1);
    const bool finish = pc + kc == k && epilogue.step != GemmEpilogue<T>::Step::none;
    // On the families that take it (config.hpp, PACK_TRANSPOSED_B_IN_FIRST_ROW_BLOCK), a
    // transposed B with enough column panels to share out is not packed ahead: in the first
    // row block each thread packs whole column panels and multiplies each by that block of A
    // while the panel is still in L1, saving it a trip out to L2 or L3 and back (4% on 256 x
    // 4096 x 4096 NT with AVX2). An untransposed B is packed along its rows instead (below);
    // packing it panel by panel here lost 5% on 256 x 4096 x 4096 NN.
    const bool fuse_b =
        Blocks::PACK_TRANSPOSED_B_IN_FIRST_ROW_BLOCK && trans_b && n_panels >= 2 * parts;
    // Column panel jp of B, all kc rows of it, into its place in the block buffer.
    auto pack_b_column_panel = [&](index_t jp) {
      pack_b_panel<Blocks>(b_packed + jp * NR * kc, trans_b, b, ldb, pc, kc, jc + jp * NR,
                           std::min(NR, nc - jp * NR));
    };
    if (direct_b) {
      // Full panels are read in place; only a last, partial panel needs zero padding.
      if (nc % NR != 0 && part == 0)
        pack_b_panel<Blocks>(b_packed, trans_b, b, ldb, pc, kc, jc + (n_panels - 1) * NR,
                             nc % NR);
    } else if (fuse_b) {
      // packed in the first row block below
    } else if (trans_b) {
      const Share mine(n_panels, part, parts);
      for (index_t jp = mine.first; jp < mine.last; ++jp) pack_b_column_panel(jp);
    } else if (packs_own_panels(shares != nullptr ? n_pairs : n_panels, parts)) {
      // Each thread packs, along the rows, the column panels of its own pairs (shares),
      // or whose first tile is its own in the first row block (for_my_columns' fixed split, row
      // panels fastest: the families that share blocks run no other order, static_assert
      // above), so the panels it multiplies are mostly in its own cache. Split by rows
      // instead, every panel was half packed by the other thread. Two AVX-512 threads (when
      // that path still shared blocks: config.hpp, SHARE_PACKED_BLOCKS), GFLOP/s, alternated
      // medians: float 256 x 4096 x 1024 NN 277-295 -> 311-321, 256 x 4096 x 4096 268-284 ->
      // 298-302, 1024^3 288-298 -> 306-313; double 256 x 4096 x 1024 130-133 -> 134-140. The
      // bits are the same.
      index_t p0 = 0, p1 = 0;  // the thread's column panels
      if (shares != nullptr) {
        const Share own_pairs(n_pairs, part, parts);
        p0 = 2 * own_pairs.first;
        p1 = std::min(n_panels, 2 * own_pairs.last);
      } else {
        const index_t first_panels =
            RowPanels<Blocks>(std::min(MC, m), direct_a || !trans_a, direct_a).count();
        const Share first_tiles(n_panels * first_panels, part, parts);
        p0 = (first_tiles.first + first_panels - 1) / first_panels;
        p1 = (first_tiles.last + first_panels - 1) / first_panels;
      }
      const index_t c0 = p0 * NR, c1 = std::min(nc, p1 * NR);
      if (c0 < c1)
        pack_rows_into_panels<NR>(b_packed + p0 * NR * kc, NR * kc, 0, kc, b + pc * ldb + jc + c0,
                                  ldb, c1 - c0, packed_width<Blocks>((c1 - c0) % NR));
    } else {
      const Share mine(kc, part, parts);
      pack_rows_into_panels<NR>(b_packed, NR * kc, mine.first, mine.last - mine.first,
                                b + pc * ldb + jc, ldb, nc, packed_width<Blocks>(nc % NR));
    }
    team_barrier(parts);
    for (index_t ic = 0; ic < m; ic += MC) {
      const index_t mc = std::min(MC, m - ic);
      // An A^T packed along its rows (pack_rows_into_panels) fills uniform MR-row panels: its
      // blocks are not cut.
      const RowPanels<Blocks> row_panels(mc, direct_a || !trans_a, direct_a);
      const index_t m_panels = row_panels.count();
      const index_t last_rows = row_panels.height(m_panels - 1);
      // With a_once, each row block keeps its own place in a_all, packed at the first column
      // block and read again by the later ones.
      T* const a_packed = a_once ? a_all + ic * kc : a_all;
      if (a_once && jc > 0) {
        // packed for the first column block of this k block
      } else if (direct_a) {
        // Panels of a tile's height are read in place; only a last, lower panel needs zero
        // padding.
        if (!RowPanels<Blocks>::tile_height(last_rows) && part == 0)
          pack_a_panel<Blocks>(a_packed + (m_panels - 1) * MR * kc, trans_a, a, lda,
                               ic + row_panels.first_row(m_panels - 1), last_rows, pc, kc);
      } else if (trans_a) {
        const Share mine(kc, part, parts);
        pack_rows_into_panels<MR>(a_packed, MR * kc, mine.first, mine.last - mine.first,
                                  a + pc * lda + ic, lda, mc, MR);
      } else {
        const Share mine(m_panels, part, parts);
        for (index_t ip = mine.first; ip < mine.last; ++ip)
          pack_a_panel<Blocks>(a_packed + ip * MR * kc, trans_a, a, lda,
                               ic + row_panels.first_row(ip), row_panels.height(ip), pc, kc);
      }
      if (shares != nullptr && part == 0) shares->reset(n_pairs, parts);
      team_barrier(parts);
      // Where the tile at (column panel jp, row panel ip) of this block reads its panels.
      auto tile_panels = [&](index_t jp, index_t ip, index_t rows,
                             index_t cols) BACKPROP_LAMBDA_ALWAYS_INLINE {
        PanelOperands<T> panels{a_packed + ip * MR * kc, 1, MR, b_packed + jp * NR * kc,
                                packed_width<Blocks>(cols)};
        if (direct_a && RowPanels<Blocks>::tile_height(rows)) {
          const index_t row = ic + row_panels.first_row(ip);
          panels.a = trans_a ? a + pc * lda + row : a + row * lda + pc;
          panels.a_row = trans_a ? 1 : lda;
          panels.a_k = trans_a ? lda : 1;
        }
        if (direct_b && cols == NR) {
          panels.b = b + pc * ldb + jc + jp * NR;
          panels.b_k = ldb;
        } else if (direct_b) {
          panels.b = b_packed;  // the one packed (partial) panel
        }
        return panels;
      };
      // The column of `count` tiles of `rows` x cols from (jp, ip) down: one kernel call per
      // tile and k block (kernels.tile), or one for them all (kernels.column). The epilogue
      // takes each block of C the kernels write, just before and just after them, while it is
      // in L1 or L2.
      auto run_tiles = [&](index_t jp, index_t ip, index_t count, index_t rows, index_t cols,
                           const PanelOperands<T>& panels) BACKPROP_LAMBDA_ALWAYS_INLINE {
        const index_t i0 = ic + row_panels.first_row(ip), j0 = jc + jp * NR;
        TileColumn<T> column{panels, 0, 1, kc, k_block, c + i0 * ldc + j0, ldc,
                             alpha, tile_beta, rows, cols};
        auto run = [&](auto&& kernel, index_t row, index_t block_rows)
                       BACKPROP_LAMBDA_ALWAYS_INLINE {
          if (bias_start) {
            for (index_t j = 0; j < cols; j += NR)
              fill_rows<NR>(column.c + j, ldc, epilogue.bias + j0 + j, block_rows,
                            std::min(NR, cols - j));
          }
          kernel();
          if (finish) epilogue.finish(column.c, ldc, row, j0, block_rows, cols);
        };
        if (kernels.column == nullptr || panels.b_next != nullptr) {
          for (index_t t = 0; t < count; ++t) {
            if (t > 0) {
              column.panels = tile_panels(jp, ip + t, rows, cols);
              column.c += rows * ldc;
            }
            run([&] { for_each_tile_call(column, kernels.tile); }, i0 + t * rows, rows);
          }
          return;
        }
        column.count = count;
        // Panels of one height lie that height apart in an A read in place, or one slot apart
        // in the packing buffer.
        const bool in_place = direct_a && RowPanels<Blocks>::tile_height(rows);
        column.a_step = in_place ? (trans_a ? rows : rows * lda) : MR * kc;
        run([&] { kernels.column(column); }, i0, count * rows);
      };
      // Tiles ip0.. ip1 - 1 of column panel jp, as runs of panels of one height (consecutive
      // panels of one height start that many rows apart: RowPanels).
      auto run_column = [&](index_t jp, index_t ip0, index_t ip1) BACKPROP_LAMBDA_ALWAYS_INLINE {
        const index_t cols = std::min(NR, nc - jp * NR);
        for (index_t ip = ip0; ip < ip1;) {
          const index_t rows = row_panels.height(ip);
          index_t end = ip + 1;
          while (end < ip1 && row_panels.height(end) == rows) ++end;
          run_tiles(jp, ip, end - ip, rows, cols, tile_panels(jp, ip, rows, cols));
          ip = end;
        }
      };
      // The full tiles at (jp, ip) and (jp + 1, ip) in one kernel call.
      auto run_two_tiles = [&](index_t jp, index_t ip) BACKPROP_LAMBDA_ALWAYS_INLINE {
        const index_t rows = row_panels.height(ip);
        PanelOperands<T> panels = tile_panels(jp, ip, rows, NR);
        panels.b_next = tile_panels(jp + 1, ip, rows, NR).b;
        run_tiles(jp, ip, 1, rows, 2 * NR, panels);
      };
      // Runs each(jp, ip0, ip1) on this thread's tiles, a column (jp, ip0..ip1 - 1) at a time,
      // in order within each run of consecutive column panels, and end_of_run() after each run.
      auto for_my_columns = [&](auto&& each, auto&& end_of_run) BACKPROP_LAMBDA_ALWAYS_INLINE {
        if (shares != nullptr) {
          // The pair's panels one after the other, row panels fastest, each packed first in
          // the first row block of a fused B (as below). A thread's own pairs come in order,
          // but a stolen one need not follow the last: every pair is a run of its own. On a
          // shared host one core often runs 10-30% slower than the other for seconds at a
          // time, and a fixed share made the faster thread wait at every block's barrier.
          // Two Zen 3 threads, against the fixed share of tiles, medians of the paired ratios
          // of alternated runs on the ten shapes of bench/RESULTS.md (512^3, 1024^3 and
          // wide's): float +1% to +17% per shape, +7% over all (faster in 70 of 100 pairs),
          // double +6% to +18%, +11% over all (65 of 80); wide's train_step +8% to +10% in
          // each of four rounds. The bits are the same.
          bool stolen = false;
          for (index_t pair = shares->take(part, parts, stolen); pair >= 0;
               pair = shares->take(part, parts, stolen)) {
            for (index_t jp = 2 * pair; jp < std::min(n_panels, 2 * pair + 2); ++jp) {
              if (fuse_b && ic == 0) pack_b_column_panel(jp);
              each(jp, 0, m_panels);
            }
            end_of_run();
            if (stolen) stolen_pairs.fetch_add(1, std::memory_order_relaxed);
          }
        } else if (fuse_b && ic == 0) {
          const Share mine(n_panels, part, parts);
          for (index_t jp = mine.first; jp < mine.last; ++jp) {
            pack_b_column_panel(jp);
            each(jp, 0, m_panels);
          }
          end_of_run();
        } else {
          // Each tile of C belongs to exactly one thread. Row panels vary fastest, so a
          // thread keeps its B panel in L1 across them; or, on a family that takes it (its
          // GEMMs are one-thread slabs: config.hpp, COLUMN_PANELS_FASTEST), column panels do,
          // and the thread keeps a row panel of A in L1 while B's panels stream from L2.
          const Share mine(n_panels * m_panels, part, parts);
          for (index_t tile = mine.first; tile < mine.last;) {
            if constexpr (Blocks::COLUMN_PANELS_FASTEST) {
              each(tile % n_panels, tile / n_panels, tile / n_panels + 1);
              ++tile;
            } else {
              const index_t ip = tile % m_panels;
              const index_t count = std::min(m_panels - ip, mine.last - tile);
              each(tile / m_panels, ip, ip + count);
              tile += count;
            }
          }
          end_of_run();
        }
      };
      if (last_rows > Blocks::TWO_PANEL_MAX_ROWS) {
        for_my_columns(run_column, [] {});
      } else if constexpr (Blocks::TWO_PANEL_MAX_ROWS > 0) {
        // A short last row panel: its tile in a full column panel waits for the same tile of
        // the next column panel, and the two run as one (config.hpp, TWO_PANEL_MAX_ROWS). A
        // thread meets the last-row tiles of a run in increasing column panel order (in either
        // tile order), so the next one it meets in the run is that neighbour's; a tile still
        // waiting at the end of a run runs alone. The bits are those of two calls.
        const index_t full_panels = nc / NR, last = m_panels - 1;
        index_t waiting = -1;  // the column panel whose last-row tile waits, if any
        for_my_columns(
            [&](index_t jp, index_t ip0, index_t ip1) BACKPROP_LAMBDA_ALWAYS_INLINE {
              if (ip1 <= last || jp >= full_panels) {
                run_column(jp, ip0, ip1);
                return;
              }
              run_column(jp, ip0, last);
              if (waiting >= 0) {
                run_two_tiles(waiting, last);
                waiting = -1;
              } else {
                waiting = jp;
              }
            },
            [&] {
              if (waiting >= 0) run_column(waiting, last, last + 1);
              waiting = -1;
            });
      }
      // Every tile is done before the next block packs over A (and, after a fused block,
      // every panel of B is packed before another thread reads it).
      team_barrier(parts);
    }
  };
  if (a_once) {
    for (index_t pc = 0; pc < k; pc += KC)
      for (index_t jc = 0; jc < n; jc += NC) block(jc, pc);
  } else {
    for (index_t jc = 0; jc < n; jc += NC)
      for (index_t pc = 0; pc < k; pc += KC) block(jc, pc);
  }
}

// A thread's packing buffers for one element type, grown once and reused by every call. The
// tile families share them: B's buffer alone is KC x NC (4 MiB of float on the AVX2 and portable
// families, 1 MiB on the AVX-512 ones), and a pair per family
// would hold twice that per thread. `products`: the k blocks' products of a GemmSplit::k_blocks
// call this thread makes (gemm_k_split), at most a third of op(B)'s values.
template <typename T>
struct PackingBuffers {
  AlignedBuffer<T> a, b, products;
  static PackingBuffers& of_this_thread() {
    thread_local PackingBuffers buffers;
    return buffers;
  }
};

// The blocked GEMM on m, n, k >= 1 on the team's threads (gemm_team), with this calling
// thread's packing buffers.
template <typename Blocks, typename T>
void gemm_blocked(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, index_t k_block,
                  T alpha, const T* a, index_t lda, const T* b, index_t ldb, T beta, T* c,
                  index_t ldc, const ReadyEpilogue<T>& epilogue, const TileKernels<T>& kernels,
                  const TeamCall& team) {
  PackingBuffers<T>& buffers = PackingBuffers<T>::of_this_thread();
  const bool a_once = packs_a_once_per_k_block<Blocks, T>(
      m, n, read_a_in_place<Blocks, T>(trans_a, lda, n), team.count());
  const index_t a_rows = a_once ? (m + Blocks::MC - 1) / Blocks::MC * Blocks::MC : Blocks::MC;
  T* const a_packed = buffers.a.reserve(std::size_t(a_rows * Blocks::KC));
  T* const b_packed = buffers.b.reserve(std::size_t(Blocks::KC * Blocks::NC));
  StealingShares pair_shares;
  team.run([&](int part, int parts) {
    // a_once only on a team of one, whatever the team OpenMP starts (a_packed has room for it)
    gemm_team<Blocks>(trans_a, trans_b, m, n, k, k_block, alpha, a, lda, b, ldb, beta, c, ldc,
                      epilogue, kernels, a_packed, b_packed, a_once && parts == 1,
                      Blocks::SHARE_PACKED_BLOCKS && StealingShares::fits(parts) ? &pair_shares
                                                                                  : nullptr,
                      part, parts);
  });
}

// gemm_blocked with the family that reads A as read_a_in_place decides for this n: a call, or a
// thread's column slab, with few column panels and A untransposed takes the in-place family.
// An entry of C gets the same sums from every tile height, so the choice changes no bits.
template <typename Blocks, typename T>
void gemm_blocked_for_a(bool trans_a, bool trans_b, index_t m, index_t n, index_t k,
                        index_t k_block, T alpha, const T* a, index_t lda, const T* b,
                        index_t ldb, T beta, T* c, index_t ldc,
                        const ReadyEpilogue<T>& epilogue, const TileKernels<T>& kernels,
                        const TeamCall& team) {
  using InPlace = typename InPlaceFamily<Blocks>::type;
  if (takes_in_place_family<Blocks, T>(trans_a, lda, n))
    gemm_blocked<InPlace>(trans_a, trans_b, m, n, k, k_block, alpha, a, lda, b, ldb, beta, c,
                          ldc, epilogue, kernels, team);
  else
    gemm_blocked<Blocks>(trans_a, trans_b, m, n, k, k_block, alpha, a, lda, b, ldb, beta, c,
                         ldc, epilogue, kernels, team);
}

// The rows a split GEMM's row slabs come in: whole row panels, or on a family that cuts its
// blocks into lower tiles, the lowest tile's rows, so that an even split stays even and each
// slab is still cut whole (config.hpp, GemmBlocking512InPlaceA: 128 rows as 64 and 64).
template <typename Blocks>
constexpr index_t row_slab_unit() {
  return Blocks::CUT_MR > 0 ? Blocks::CUT_MR / 2 : Blocks::MR;
}

// Whether a split GEMM gives each thread whole columns of C rather than whole rows. Columns
// pack the shorter operand A twice (once per thread) when m <= n. A family that runs row panels
// fastest (walks down each column panel of C) takes them whenever m <= n: there the thread of
// the lower row slab was slowed by the other thread's walk over the same C, most likely because
// at the end of each walk the hardware's prefetch runs on into the next slab's lines. One Zen 3
// thread per slab, C 16 bytes past a line, alternated in one process, us per call, rows ->
// columns: 128 x 512 x 10 NT float 59.1 -> 36.6 (one thread alone: 36.9; in rows the lower
// slab's thread took 56.7 us and the upper's 19.8, and 25.4 and 19.1 with the upper slab written
// into another array), double 64 x 256 x 10 NT 18.5 -> 15.5, float 64 x 256 x 256 78.5 -> 68.1,
// 128 x 512 x 784 1021 -> 941, 128 x 512 x 512 NT 618 -> 556, 32 x 128 x 784 75.5 -> 73.2
// (bench/RESULTS.md, forty-second session).
// A family that runs column panels fastest (AVX-512) walks along C's rows, and there columns
// cost more: a column slab starts on an NR boundary, and when that is not a cache line of C
// (NumPy's own arrays start 16 bytes past one) the threads write the line they share in every
// row of C, once per k block, and pass it back and forth: two AVX-512 threads, C at +16 bytes,
// float GFLOP/s columns -> rows: 128 x 512 x 10 NT 64 -> 114, 64 x 256 x 10 NT 38 -> 68, 64^3
// 67 -> 110, 96^3 145 -> 193, 128 x 512 x 32 NT 181 -> 198. Rows share at most the line where
// the slabs meet, and pack B whole on each thread, so there they are taken when B is read in
// place (no packing: 64 x 256 x 128 200 -> 215, 32 x 128 x 784 212 -> 227) or B's extra
// packing, k (n - m) values, is less than kGemmRowSlabMaxPackingPerLine per shared line; with
// more, rows lost: 128 x 256 x 256 NT (256 per line) 268 -> 254, 128 x 512 x 512 (768) 270 ->
// 242, 128 x 1024 x 256 (1792) 290 -> 250.
template <typename Blocks, typename T>
bool split_by_columns(bool trans_b, index_t m, index_t n, index_t k, index_t k_block,
                      index_t ldb, const T* c, index_t ldc, int parts) {
  if (m > n) return false;
  if constexpr (!Blocks::COLUMN_PANELS_FASTEST) return true;
  constexpr std::size_t line = 64;
  static_assert(Blocks::NR * sizeof(T) % line == 0, "NR values are a whole number of lines");
  const bool slabs_on_lines = reinterpret_cast<std::uintptr_t>(c) % line == 0 &&
                              std::size_t(ldc) * sizeof(T) % line == 0;
  const index_t unit = row_slab_unit<Blocks>();
  const index_t row_units = (m + unit - 1) / unit;
  if (slabs_on_lines || row_units < parts) return true;
  const index_t slab_rows = (row_units + parts - 1) / parts * unit;
  if (reads_b_in_place<T>(trans_b, slab_rows, n, k, ldb)) return false;
  const double shared_lines = double(m) * double((k + k_block - 1) / k_block);
  return double(k) * double(n - m) >= double(kGemmRowSlabMaxPackingPerLine) * shared_lines;
}

// Each thread computes its own slab of C (whole columns, or whole rows: split_by_columns) with
// a one-thread GEMM: no barrier inside, at the cost of packing the shared
// operand once per thread. Column slabs start on NR boundaries and row slabs on multiples of
// row_slab_unit, so each entry of C gets the same sums as on one thread (whatever the tile's
// height): the same bits.
template <typename Blocks, typename T>
void gemm_split(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, index_t k_block,
                T alpha, const T* a, index_t lda, const T* b, index_t ldb, T beta, T* c,
                index_t ldc, const ReadyEpilogue<T>& epilogue, const TileKernels<T>& kernels,
                const TeamCall& team) {
  const bool by_columns =
      split_by_columns<Blocks>(trans_b, m, n, k, k_block, ldb, c, ldc, team.count());
  const index_t unit = by_columns ? Blocks::NR : row_slab_unit<Blocks>();
  const index_t extent = by_columns ? n : m;
  const index_t units = (extent + unit - 1) / unit;
  const TeamCall& alone = TeamCall::one_thread();
  team.run([&](index_t part, index_t parts) {
    const index_t first = std::min(extent, units * part / parts * unit);
    const index_t last = std::min(extent, units * (part + 1) / parts * unit);
    if (first < last && by_columns) {
      gemm_blocked_for_a<Blocks>(trans_a, trans_b, m, last - first, k, k_block, alpha, a, lda,
                                 trans_b ? b + first * ldb : b + first, ldb, beta, c + first,
                                 ldc, epilogue.shifted(0, first), kernels, alone);
    } else if (first < last) {
      gemm_blocked_for_a<Blocks>(trans_a, trans_b, last - first, n, k, k_block, alpha,
                                 trans_a ? a + first : a + first * lda, lda, b, ldb, beta,
                                 c + first * ldc, ldc, epilogue.shifted(first, 0), kernels, alone);
    }
  });
}

// gemm_k_split_applies for k blocks k_block deep (gemm_k_block). The other threads' block
// products may hold up to a third of op(B)'s values (kGemmKSplitMaxShare): a quarter left
// mnist's first layer (128 x 512 x 784, four blocks of 196, two of them another thread's: 3 x
// 128 x 2 = 768 <= 784) splitting U's columns, each thread reading every row of W, half of them
// last written by the other core's update; by k blocks each multiplies the rows it updates. Two
// Xeon threads, mnist's shuffled epochs faster in 9 of 10 alternated rounds (median +2.3%,
// -1.1% to +7.3%), its train_step in 4 of 6 (+3.9%). A build timing each phase put the gain in
// the first layer's backward region (479-492 -> 443-460 us a step; its forward within the
// noise), which writes and updates those rows: where the rows sit is the likely cause, not a
// measured one. The bits are the same.
inline bool k_split_applies(index_t m, index_t k, index_t k_block, int parts) {
  if (parts < 2 || m <= 0 || k <= 0) return false;
  const index_t blocks = (k + k_block - 1) / k_block;
  if (blocks < parts) return false;
  const index_t others = blocks - Share(blocks, 0, parts).last;
  return kGemmKSplitMaxShare * m * others <= k;
}

// C[i, j] += P[i, j] over rows x n, keeping a NaN already in C, as the one-thread write-back's
// fmadd(1, C, product) does (a plain add may keep the product's NaN instead, of the other
// sign). Cloned per instruction set: compiled for the baseline alone, the select kept this loop
// scalar, 3% of deep's and tiny's samples.
template <typename T>
BACKPROP_ELEMENTWISE_CLONES void add_rows_keeping_nan(T* __restrict c, index_t ldc,
                                                      const T* __restrict p, index_t ldp,
                                                      index_t rows, index_t n) {
  for (index_t i = 0; i < rows; ++i) {
    T* __restrict row = c + i * ldc;
    const T* __restrict add = p + i * ldp;
    for (index_t j = 0; j < n; ++j) {
      const T kept = row[j];
      row[j] = kept != kept ? kept : kept + add[j];
    }
  }
}

// GemmSplit::k_blocks on m, n, k >= 1: each thread of the team multiplies its share of the k
// blocks (kc deep: gemm_k_block), one block per one-thread GEMM. The first thread's blocks go
// straight into C, starting with the caller's beta or bias; every other block's product goes
// into a buffer of its own. Then each thread adds those products onto its share of C's rows in
// block order, and makes the epilogue's step there. A block's product is written as its sum
// (alpha 1, beta 0) and then added; inside one GEMM the same block adds sum + 1 * C: the same
// rounding, so the same bits as on one thread. (With alpha != 1 a build that contracts alpha *
// sum + C into one FMA would round once where this rounds twice: gemm_tiled asks alpha 1.)
template <typename Blocks, typename T>
void gemm_k_split(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, index_t kc,
                  T alpha, const T* a, index_t lda, const T* b, index_t ldb, T beta, T* c,
                  index_t ldc, const ReadyEpilogue<T>& epilogue, const TileKernels<T>& kernels,
                  const TeamCall& team, const GemmPrologue& prologue) {
  const index_t blocks = (k + kc - 1) / kc;
  // Room for the most blocks the other threads can take: OpenMP may start fewer threads than
  // asked for (inside another parallel region, say), and then the first thread takes more.
  T* const products = PackingBuffers<T>::of_this_thread().products.reserve(
      std::size_t((blocks - Share(blocks, 0, team.count()).last) * m * n));
  k_split_calls.fetch_add(1, std::memory_order_relaxed);
  const ReadyEpilogue<T> start = epilogue.bias_only(), none{GemmEpilogue<T>{}};
  const TeamCall& alone = TeamCall::one_thread();
  team.run([&](int part, int parts) {
    const index_t first_blocks = Share(blocks, 0, parts).last;
    const Share mine(blocks, part, parts);
    if (prologue.run != nullptr) {
      prologue(part, parts);
      team_barrier(parts);  // every thread reads all of A's rows
    }
    for (index_t block = mine.first; block < mine.last; ++block) {
      const index_t k0 = block * kc, depth = std::min(kc, k - k0);
      const T* a_block = trans_a ? a + k0 * lda : a + k0;
      const T* b_block = trans_b ? b + k0 : b + k0 * ldb;
      if (part == 0) {
        gemm_blocked_for_a<Blocks>(trans_a, trans_b, m, n, depth, depth, alpha, a_block, lda,
                                   b_block, ldb, block == 0 ? beta : T(1), c, ldc,
                                   block == 0 ? start : none, kernels, alone);
      } else {
        gemm_blocked_for_a<Blocks>(trans_a, trans_b, m, n, depth, depth, alpha, a_block, lda,
                                   b_block, ldb, T(0), products + (block - first_blocks) * m * n,
                                   n, none, kernels, alone);
      }
    }
    team_barrier(parts);
    const Share rows(m, part, parts);
    for (index_t block = first_blocks; block < blocks; ++block)
      add_rows_keeping_nan(c + rows.first * ldc, ldc,
                           products + (block - first_blocks) * m * n + rows.first * n, n,
                           rows.last - rows.first, n);
    if (rows.first < rows.last)
      epilogue.finish(c + rows.first * ldc, ldc, rows.first, 0, rows.last - rows.first, n);
  });
}

// body(Family{}) with the family of register tiles a GEMM takes on `isa`: the path's own, or
// its family for A read in place (takes_in_place_family).
template <typename T, typename Body>
auto with_tile_family(Isa isa, bool trans_a, index_t lda, index_t n, Body&& body) {
  auto pick = [&](auto path_family) {
    using Blocks = decltype(path_family);
    using InPlace = typename InPlaceFamily<Blocks>::type;
    return takes_in_place_family<Blocks, T>(trans_a, lda, n) ? body(InPlace{}) : body(Blocks{});
  };
  return isa == Isa::avx512 ? pick(GemmBlocking512<T>{}) : pick(GemmBlocking<T>{});
}

// The GEMM on m, n, k >= 1 with a family of register tiles (with_tile_family) and its path's
// kernels.
template <typename Blocks, typename T>
void gemm_tiled(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, index_t k_block,
                T alpha, const T* a, index_t lda, const T* b, index_t ldb, T beta, T* c,
                index_t ldc, const ReadyEpilogue<T>& epilogue, const TileKernels<T>& kernels,
                GemmSplit split, const GemmPrologue& prologue) {
  const TeamCall team = gemm_team_call<T>(m, n, k);
  if (split == GemmSplit::k_blocks && alpha == T(1) &&
      k_split_applies(m, k, k_block, team.count())) {
    gemm_k_split<Blocks>(trans_a, trans_b, m, n, k, k_block, alpha, a, lda, b, ldb, beta, c, ldc,
                         epilogue, kernels, team, prologue);
    return;
  }
  prologue(0, 1);
  if (team.count() > 1 &&
           (!Blocks::SHARE_PACKED_BLOCKS ||
            double(m) * double(n) * double(k) < double(kGemmSharedMinFlops)))
    gemm_split<Blocks>(trans_a, trans_b, m, n, k, k_block, alpha, a, lda, b, ldb, beta, c, ldc,
                       epilogue, kernels, team);
  else
    gemm_blocked<Blocks>(trans_a, trans_b, m, n, k, k_block, alpha, a, lda, b, ldb, beta, c,
                         ldc, epilogue, kernels, team);
}

// C = alpha * A^T B + beta * C with the narrow kernel: whole blocks of narrow.width rows split
// over the threads, then the last rows from a zero-padded copy of their columns of A, so that
// they get the same sums as in a whole block (512 x 10 x 128 float, one AVX-512 thread: 59 ->
// 121 GFLOP/s; double 24 -> 60).
template <typename T>
void gemm_narrow(const NarrowKernel<T>& narrow, index_t m, index_t n, index_t k, T alpha,
                 const T* a, index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc) {
  const index_t width = narrow.width, blocks = m / width, tail = m - blocks * width;
  const TeamCall team = gemm_team_call<T>(m, n, k);
  team.run([&](int part, int parts) {
    const Share mine(blocks, part, parts);
    for (index_t block = mine.first; block < mine.last; ++block)
      narrow.rows(n, width, k, a + block * width, lda, b, ldb, c + block * width * ldc, ldc,
                  alpha, beta);
  });
  if (tail == 0) return;
  thread_local AlignedBuffer<T> strip_buffer;
  T* const strip = strip_buffer.reserve(std::size_t(k * width));
  const T* const last = a + blocks * width;
  for (index_t p = 0; p < k; ++p)
    for (index_t l = 0; l < width; ++l) strip[p * width + l] = l < tail ? last[p * lda + l] : T(0);
  narrow.rows(n, tail, k, strip, width, b, ldb, c + blocks * width * ldc, ldc, alpha, beta);
}

}  // namespace

template <typename T>
index_t gemm_burst_min_flops() {
  const index_t scale = active_isa() == Isa::avx512 ? kGemmBurstAvx512Scale : 1;
  return per_element_type<T>(kGemmBurstParallelMinFlops) * scale;
}
template index_t gemm_burst_min_flops<float>();
template index_t gemm_burst_min_flops<double>();

template <typename T>
int gemm_thread_count(index_t m, index_t n, index_t k) {
  return gemm_team_call<T>(m, n, k).count();
}
template int gemm_thread_count<float>(index_t, index_t, index_t);
template int gemm_thread_count<double>(index_t, index_t, index_t);

template <typename T>
bool gemm_splits_by_columns(bool trans_a, bool trans_b, index_t m, index_t n, index_t k,
                            index_t lda, index_t ldb, const T* c, index_t ldc, int parts) {
  // The rule gemm_split applies, with the family gemm_fused gives the call, to a product of the
  // fewest k blocks (gemm, kernels.gemm; a network's layers ask for more).
  return with_tile_family<T>(active_isa(), trans_a, lda, n, [&](auto family) {
    return split_by_columns<decltype(family)>(trans_b, m, n, k, gemm_k_block(k), ldb, c, ldc,
                                              parts);
  });
}
template bool gemm_splits_by_columns<float>(bool, bool, index_t, index_t, index_t, index_t,
                                            index_t, const float*, index_t, int);
template bool gemm_splits_by_columns<double>(bool, bool, index_t, index_t, index_t, index_t,
                                             index_t, const double*, index_t, int);

template <typename T>
void gemm_fused(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, T alpha, const T* a,
                index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc,
                const GemmEpilogue<T>& given, GemmSplit split, index_t min_k_blocks,
                const GemmPrologue& prologue) {
  // C (m x n) = (bias or beta * C) + alpha * op(A) (m x k) @ op(B) (k x n), then the step
  if (m <= 0 || n <= 0 || k <= 0 || alpha == T(0)) prologue(0, 1);  // A ready all the same
  if (m <= 0 || n <= 0) return;
  const ReadyEpilogue<T> epilogue(given);
  if (k <= 0 || alpha == T(0)) {
    if (epilogue.bias != nullptr)
      fill_rows<GemmBlocking<T>::NR>(c, ldc, epilogue.bias, m, n);
    else
      scale_c(m, n, beta, c, ldc);
    epilogue.finish(c, ldc, 0, 0, m, n);
    return;
  }
  // The path is read once per call: the tiles, the packing and the kernel must agree. (The
  // transposes that pack a strip, and the burst threshold, read it again: they change no bytes.)
  const Isa isa = active_isa();
  // A weight gradient with few columns (op(A) = A^T, B as stored, nothing fused) takes the
  // narrow kernel, where the micro-kernel's tile would be mostly padding; it sums all of k in one
  // chain, so not where the caller asks for k blocks.
  const NarrowKernel<T> narrow = select_narrow_kernel<T>(isa);
  if (narrow.rows != nullptr && min_k_blocks == 1 && trans_a && !trans_b &&
      n <= kNarrowMaxColumns &&
      epilogue.step == GemmEpilogue<T>::Step::none && epilogue.bias == nullptr) {
    prologue(0, 1);
    gemm_narrow(narrow, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  const TileKernels<T> kernels = select_tile_kernels<T>(isa);
  const index_t k_block = gemm_k_block(k, min_k_blocks);
  with_tile_family<T>(isa, trans_a, lda, n, [&](auto family) {
    gemm_tiled<decltype(family)>(trans_a, trans_b, m, n, k, k_block, alpha, a, lda, b, ldb, beta,
                                 c, ldc, epilogue, kernels, split, prologue);
  });
}

bool gemm_k_split_applies(index_t m, index_t k, int parts, index_t min_k_blocks) {
  return k > 0 && k_split_applies(m, k, gemm_k_block(k, min_k_blocks), parts);
}

std::uint64_t gemm_k_split_count() { return k_split_calls.load(std::memory_order_relaxed); }

std::uint64_t gemm_stolen_pairs_count() {
  return stolen_pairs.load(std::memory_order_relaxed);
}

index_t gemm_k_block(index_t k, index_t min_blocks) {
  static_assert(GemmBlocking<float>::KC == GemmBlocking512<float>::KC &&
                    GemmBlocking<double>::KC == GemmBlocking512<double>::KC &&
                    GemmBlocking<float>::KC == GemmBlocking<double>::KC,
                "every path and type sums in the same k blocks");
  if (k <= 0) return 0;
  constexpr index_t KC = GemmBlocking<float>::KC;
  const index_t blocks =
      std::max((k + KC - 1) / KC, std::min(min_blocks, k / kGemmMinKBlockDepth));
  return (k + blocks - 1) / blocks;  // balanced: 784 = 4 x 196, not 3 x 256 + 16
}

template <typename T>
void gemm(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, T alpha, const T* a,
          index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc) {
  // C (m x n) = alpha * op(A) (m x k) @ op(B) (k x n) + beta * C
  gemm_fused(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, GemmEpilogue<T>{});
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
  template void gemm_fused<T>(bool, bool, index_t, index_t, index_t, T, const T*, index_t,     \
                              const T*, index_t, T, T*, index_t, const GemmEpilogue<T>&,       \
                              GemmSplit, index_t, const GemmPrologue&);                        \
  template void gemm_ref<T>(bool, bool, index_t, index_t, index_t, T, const T*, index_t,       \
                            const T*, index_t, T, T*, index_t);
BACKPROP_INSTANTIATE_GEMM(float)
BACKPROP_INSTANTIATE_GEMM(double)
#undef BACKPROP_INSTANTIATE_GEMM

}  // namespace backprop
