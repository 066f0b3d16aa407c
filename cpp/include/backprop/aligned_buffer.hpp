// 64-byte aligned memory: a growable scratch array (packing buffers sized once, reused), and a
// std::vector whose data starts on a cache line (the engine's workspaces).
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>
#include <vector>

namespace backprop {

inline void* cache_line_alloc(std::size_t n, std::size_t size) {
  if (n > (std::size_t(-1) - 63) / size) throw std::bad_array_new_length();
  void* data = std::aligned_alloc(64, (n * size + 63) / 64 * 64);
  if (data == nullptr) throw std::bad_alloc();
  return data;
}

// An allocator of 64-byte aligned arrays. A matrix that starts on a cache line and whose rows
// are a whole number of lines long is written by the GEMM in whole lines: a 6 x 16 float tile
// stored 16 bytes past a line boundary splits every other store in two (128 x 512 x 10 NT:
// 25.7 us aligned, 28.6 us at +16 bytes, where glibc's malloc puts large blocks).
template <typename T>
struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <typename U>
  CacheLineAllocator(const CacheLineAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    return static_cast<T*>(cache_line_alloc(n == 0 ? 1 : n, sizeof(T)));
  }
  void deallocate(T* data, std::size_t) noexcept { std::free(data); }
  template <typename U>
  bool operator==(const CacheLineAllocator<U>&) const noexcept { return true; }
  template <typename U>
  bool operator!=(const CacheLineAllocator<U>&) const noexcept { return false; }
};

template <typename T>
using CacheLineVector = std::vector<T, CacheLineAllocator<T>>;

template <typename T>
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer() { std::free(data_); }

  // Makes room for n elements; keeps the allocation when it is already large enough.
  T* reserve(std::size_t n) {
    if (n <= size_) return data_;
    std::free(data_);
    data_ = nullptr;
    size_ = 0;
    data_ = static_cast<T*>(cache_line_alloc(n, sizeof(T)));
    size_ = n;
    return data_;
  }
  T* data() const { return data_; }

 private:
  T* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace backprop
