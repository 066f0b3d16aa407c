// A float's bits as an unsigned integer of its width: finiteness tests and magnitude bounds
// that vectorize as integer ORs and maxima, with no branch and no float compare.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

namespace backprop {

template <typename T>
using FloatBits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;

// The exponent field: all ones for Inf and NaN.
template <typename T>
constexpr FloatBits<T> kExponentBits =
    sizeof(T) == 4 ? FloatBits<T>(0x7f800000u) : FloatBits<T>(0x7ff0000000000000ull);

template <typename T>
constexpr FloatBits<T> kSignBit = FloatBits<T>(1) << (8 * sizeof(T) - 1);

template <typename T>
inline FloatBits<T> bits_of(T x) {
  FloatBits<T> bits;
  std::memcpy(&bits, &x, sizeof bits);
  return bits;
}

// The float whose bits these are: the inverse of bits_of.
template <typename T>
inline T float_from_bits(FloatBits<T> bits) {
  T value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

// x's bits with the sign cleared: the integers that order magnitudes (below).
template <typename T>
inline FloatBits<T> magnitude_bits(T x) {
  return bits_of(x) & ~kSignBit<T>;
}

// The magnitude a float's bits with the sign cleared stand for, as a double: +inf for Inf and
// for NaN (all exponent bits set). The largest of many such bit patterns, as integers, is the
// bits of the largest magnitude: non-negative floats order as their bits do.
template <typename T>
inline double magnitude_from_bits(FloatBits<T> bits) {
  bits &= ~kSignBit<T>;
  if ((bits & kExponentBits<T>) == kExponentBits<T>) return std::numeric_limits<double>::infinity();
  return double(float_from_bits<T>(bits));
}

// largest = max(largest, value): how threads merge the largest magnitudes they found.
template <typename Bits>
void raise_to(std::atomic<Bits>& largest, Bits value) {
  Bits seen = largest.load(std::memory_order_relaxed);
  while (value > seen &&
         !largest.compare_exchange_weak(seen, value, std::memory_order_relaxed)) {
  }
}

}  // namespace backprop
