// Finiteness test, largest magnitudes and one-hot targets (checks.hpp).
#include "backprop/checks.hpp"
#include "backprop/float_bits.hpp"
#include "backprop/threads.hpp"

#include <algorithm>
#include <atomic>

namespace backprop {
namespace {

// Tests the exponent bits (all ones for Inf and NaN) as integers: an OR over the range has no
// branch and no float compare, so it vectorizes. Cloned per instruction set (config.hpp).
template <typename T>
BACKPROP_ELEMENTWISE_CLONES bool range_is_finite(const T* x, index_t n) {
  using Bits = FloatBits<T>;
  constexpr Bits exponent = kExponentBits<T>;
  Bits bad = 0;
  for (index_t i = 0; i < n; ++i) bad |= Bits((bits_of(x[i]) & exponent) == exponent);
  return bad == 0;
}

// The largest magnitude's bits in a block, as integer maxima, which vectorize.
template <typename T>
BACKPROP_ELEMENTWISE_CLONES FloatBits<T> block_largest_bits(const T* x, index_t ld,
                                                            index_t rows, index_t cols) {
  FloatBits<T> largest = 0;
  for (index_t i = 0; i < rows; ++i)
    for (index_t j = 0; j < cols; ++j)
      largest = std::max(largest, magnitude_bits(x[i * ld + j]));
  return largest;
}

}  // namespace

template <typename T>
FloatBits<T> largest_magnitude_bits(const T* x, index_t ld, index_t rows, index_t cols) {
  // A contiguous block as one row, so that the loop runs full vectors to its end.
  if (ld == cols) return block_largest_bits(x, rows * cols, index_t(1), rows * cols);
  return block_largest_bits(x, ld, rows, cols);
}

template <typename T>
bool all_finite(const T* x, index_t n) {
  // Block by block, so a NaN near the start does not cost a scan of the rest; from
  // kFiniteScanParallelMin on, each thread scans a share and stops once any has seen one.
  std::atomic<bool> bad{false};
  for_each_share(n, n >= kFiniteScanParallelMin, [&](index_t first, index_t count) {
    const index_t end = first + count;
    for (index_t block = first; block < end; block += kElementwiseBlock) {
      if (bad.load(std::memory_order_relaxed)) return;
      if (!range_is_finite(x + block, std::min(kElementwiseBlock, end - block))) {
        bad.store(true, std::memory_order_relaxed);
        return;
      }
    }
  });
  return !bad.load(std::memory_order_relaxed);
}

IdRange id_range(const std::int64_t* ids, index_t n) {
  if (n == 0) return {0, -1};
  std::int64_t lowest = ids[0], highest = ids[0];
  for (index_t i = 1; i < n; ++i) {
    lowest = std::min(lowest, ids[i]);
    highest = std::max(highest, ids[i]);
  }
  return {lowest, highest};
}

template <typename T>
bool one_hot(T* out, const std::int64_t* ids, index_t n, index_t classes) {
  std::fill(out, out + n * classes, T(0));
  for (index_t i = 0; i < n; ++i) {
    const std::int64_t id = ids[i];
    if (id < 0 || id >= classes) return false;
    out[i * classes + id] = T(1);
  }
  return true;
}

template FloatBits<float> largest_magnitude_bits<float>(const float*, index_t, index_t, index_t);
template FloatBits<double> largest_magnitude_bits<double>(const double*, index_t, index_t,
                                                          index_t);
template bool all_finite<float>(const float*, index_t);
template bool all_finite<double>(const double*, index_t);
template bool one_hot<float>(float*, const std::int64_t*, index_t, index_t);
template bool one_hot<double>(double*, const std::int64_t*, index_t, index_t);

}  // namespace backprop
