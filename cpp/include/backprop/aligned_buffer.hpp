// A growable, 64-byte aligned scratch array: packing buffers and workspaces sized once, reused.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>

namespace backprop {

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
    const std::size_t bytes = ((n * sizeof(T) + 63) / 64) * 64;
    data_ = static_cast<T*>(std::aligned_alloc(64, bytes));
    if (data_ == nullptr) throw std::bad_alloc();
    size_ = n;
    return data_;
  }
  T* data() const { return data_; }

 private:
  T* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace backprop
