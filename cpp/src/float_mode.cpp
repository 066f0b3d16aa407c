// The flush-to-zero switch and the per-thread MXCSR bits it sets (float_mode.hpp).
#include "backprop/float_mode.hpp"

#include <atomic>
#include <cstddef>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "backprop/threads.hpp"

#if defined(__x86_64__)
#include <xmmintrin.h>
#define BACKPROP_HAS_MXCSR 1
#endif

namespace backprop {
namespace {

std::atomic<bool> flushing{false};

}  // namespace

void set_flush_subnormals(bool on) { flushing.store(on, std::memory_order_relaxed); }

bool flush_subnormals() { return flushing.load(std::memory_order_relaxed); }

bool flush_supported() {
#ifdef BACKPROP_HAS_MXCSR
  return true;
#else
  return false;
#endif
}

unsigned float_mode() {
#ifdef BACKPROP_HAS_MXCSR
  return _mm_getcsr() & kFlushSubnormalsMode;
#else
  return 0u;
#endif
}

std::vector<unsigned> team_float_modes(int threads) {
  // One thread in a forked child, where OpenMP's pool does not work (threads.cpp).
  const int count = in_forked_child() ? 1 : threads > 0 ? threads : 1;
  std::vector<unsigned> modes(std::size_t(count), 0u);
#ifdef _OPENMP
#pragma omp parallel num_threads(int(modes.size()))
  {
    const int index = omp_get_thread_num();
    if (std::size_t(index) < modes.size()) modes[std::size_t(index)] = float_mode();
  }
#else
  modes[0] = float_mode();
#endif
  return modes;
}

FloatModeScope::FloatModeScope(unsigned mode) : saved_(0u), changed_(false) {
#ifdef BACKPROP_HAS_MXCSR
  saved_ = _mm_getcsr();
  const unsigned wanted = (saved_ & ~kFlushSubnormalsMode) | (mode & kFlushSubnormalsMode);
  if (wanted != saved_) {
    _mm_setcsr(wanted);
    changed_ = true;
  }
#else
  (void)mode;
#endif
}

FloatModeScope::~FloatModeScope() {
#ifdef BACKPROP_HAS_MXCSR
  if (changed_)
    _mm_setcsr((_mm_getcsr() & ~kFlushSubnormalsMode) | (saved_ & kFlushSubnormalsMode));
#endif
}

}  // namespace backprop
