// General matrix multiply on row-major matrices: C = alpha * op(A) @ op(B) + beta * C.
#pragma once

#include <atomic>
#include <cstdint>

#include "backprop/activations.hpp"
#include "backprop/config.hpp"
#include "backprop/float_bits.hpp"

namespace backprop {

// op(A) is m x k: A is m x k (lda >= k) when trans_a is false, k x m (lda >= m) when true.
// op(B) is k x n: B is k x n (ldb >= n) when trans_b is false, n x k (ldb >= k) when true.
// C is m x n with ldc >= n. When beta == 0, C is never read (NaN in C does not leak through).
// Packed and cache-blocked; threads split rows and columns of C, or, when asked, whole k blocks
// whose products are added in block order (GemmSplit), so the result is bit-identical for any
// thread count.
template <typename T>
void gemm(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, T alpha, const T* a,
          index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc);

// Work fused into the GEMM's write-back, done on each tile of C (or column of tiles) while it is
// still in cache instead of in passes of its own over C (a dense layer's bias and activation):
// - bias (n values, or null): C starts from this row on every row, in place of beta * C, and
//   the product adds onto it (the same sums as filling C with the bias and using beta = 1);
// - step forward: once the sum is done, y = f(C) (m x n, leading dimension ld); C keeps the sum,
//   unless y is C itself (ld == ldc), which f then overwrites;
// - step backward: once the sum is done, C = C * f'(u), u and y = f(u) (y may be null) m x n
//   with leading dimension ld.
// y and u must not overlap A, B or C, except a forward step's y that is C itself.
template <typename T>
struct GemmEpilogue {
  enum class Step { none, forward, backward };
  const T* bias = nullptr;
  Step step = Step::none;
  ActivationParams<T> act{};
  T* y = nullptr;        // forward: written; backward: read
  const T* u = nullptr;  // backward: the pre-activation
  index_t ld = 0;
  // Forward: when set, each thread raises it to the largest magnitude it wrote into y (as bits
  // with the sign cleared: float_bits.hpp), on each block right after its step, while the block
  // is in cache: a training step's bound on the next layer's inputs (mlp.cpp), without a scan
  // of y on one thread after the product.
  std::atomic<FloatBits<T>>* largest_output = nullptr;

  // A dense layer's forward: C = bias + product, y = f(C) (ld: y's leading dimension).
  static GemmEpilogue forward(const T* bias, ActivationParams<T> act, T* y, index_t ld) {
    GemmEpilogue e;
    e.bias = bias;
    e.step = Step::forward;
    e.act = act;
    e.y = y;
    e.ld = ld;
    return e;
  }

  // A hidden layer's delta: C = product * f'(u), with y = f(u) or nullptr.
  static GemmEpilogue backward(ActivationParams<T> act, const T* u, T* y, index_t ld) {
    GemmEpilogue e;
    e.step = Step::backward;
    e.act = act;
    e.u = u;
    e.y = y;
    e.ld = ld;
    return e;
  }

  // The same epilogue for the block of C that starts at (row, col).
  GemmEpilogue shifted(index_t row, index_t col) const {
    GemmEpilogue part = *this;
    if (bias != nullptr) part.bias = bias + col;
    if (y != nullptr) part.y = y + row * ld + col;
    if (u != nullptr) part.u = u + row * ld + col;
    return part;
  }
};

// How a GEMM on several threads divides the work between them:
// - slabs_of_c: each thread computes whole rows or columns of C (or its tiles, when large);
// - k_blocks: each thread multiplies its own share of the k blocks, the rows of op(B) from one
//   block boundary to another (gemm_k_block), and C is the sum of the blocks' products, added in
//   block order. For a B whose rows each thread keeps in its own cache (a training step's
//   weights, which the update splits by rows): a column of B is then never read across cores.
//   Taken only where gemm_k_split_applies and alpha is 1; else slabs.
// Either way, C gets the same bits as on one thread (NaN included).
enum class GemmSplit { slabs_of_c, k_blocks };

// Whether a GemmSplit::k_blocks product of m rows and depth k splits by k blocks on `parts`
// threads: when there are at least as many blocks as threads, and the products of the blocks
// the other threads take (m x n values each, held in a buffer until added into C) are at most
// 1 / kGemmKSplitMaxShare (a third) of op(B)'s k x n values.
bool gemm_k_split_applies(index_t m, index_t k, int parts, index_t min_k_blocks = 1);

// How many GEMMs have split by k blocks in this process (for the tests).
std::uint64_t gemm_k_split_count();

// How many pairs of column panels a GEMM's thread has taken from another thread's share, in
// this process (for the tests: stealing_shares.hpp).
std::uint64_t gemm_stolen_pairs_count();

// Work that makes A ready before a GEMM reads it: run(context, part, parts) does share `part`
// of `parts`, and the shares together do all of it. A GemmSplit::k_blocks product runs it on
// each of its threads, which then wait for one another before they read A; any other product
// runs it as (0, 1) before it starts. (train_epoch's shuffled batch is copied this way inside
// the first layer's region, by both threads, instead of by the calling thread alone before it.)
struct GemmPrologue {
  void (*run)(const void* context, int part, int parts) = nullptr;
  const void* context = nullptr;
  void operator()(int part, int parts) const {
    if (run != nullptr) run(context, part, parts);
  }
};

// gemm with an epilogue: C = bias + alpha * op(A) @ op(B) (or beta * C + ..., without a bias),
// then the epilogue's step on C. Bit-identical to the unfused sequence for any thread count.
// min_k_blocks: C sums in at least that many k blocks (gemm_k_block), each block's sum added
// onto C in order as a gemm call of that block alone with beta 1 would.
template <typename T>
void gemm_fused(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, T alpha, const T* a,
                index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc,
                const GemmEpilogue<T>& epilogue, GemmSplit split = GemmSplit::slabs_of_c,
                index_t min_k_blocks = 1, const GemmPrologue& prologue = {});

// The k block a GEMM of depth k sums in (the last one may be shorter), on every path and
// thread count: the fewest blocks of at most KC (config.hpp), balanced, but at least
// min_blocks of them where each is still kGemmMinKBlockDepth deep. Those are the boundaries a
// GemmSplit::k_blocks product splits op(B)'s rows at: a caller that wants its products split
// that way on two threads asks for two blocks, at every size and thread count, so that C's
// bits never depend on either.
index_t gemm_k_block(index_t k, index_t min_blocks = 1);

// The threads a GEMM of this size would run on if called now (config.hpp's thresholds). It goes
// on record for the burst rule as such a GEMM would, one that takes no time; split, it is
// judged as one whose threads all start at once (call_burst.hpp).
template <typename T>
int gemm_thread_count(index_t m, index_t n, index_t k);

// The fewest multiply-adds for which a GEMM in a burst of calls splits, on the active path
// (config.hpp, kGemmBurstParallelMinFlops).
template <typename T>
index_t gemm_burst_min_flops();

// Whether this GEMM, split into `parts` slabs of C (gemm.cpp's gemm_split: below
// kGemmSharedMinFlops, or at any size on the AVX-512 path), gives each thread whole columns
// rather than whole rows on the active path. The bytes are the same either way; the tests
// check that their shapes take the way they mean to.
template <typename T>
bool gemm_splits_by_columns(bool trans_a, bool trans_b, index_t m, index_t n, index_t k,
                            index_t lda, index_t ldb, const T* c, index_t ldc, int parts);

// The plain triple loop: the reference the tests and the benchmark compare against.
template <typename T>
void gemm_ref(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, T alpha, const T* a,
              index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc);

}  // namespace backprop
