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

std::atomic<bool> flushing{true};

// The calling thread's bits before the outermost training call it is in; -1 outside one.
thread_local int resting_bits = -1;

// A training call's bits: flushing when asked and the build can, else the caller's.
unsigned training_mode() {
  return flush_supported() && flush_subnormals() ? kFlushSubnormalsMode : float_mode();
}

#ifdef BACKPROP_HAS_MXCSR
void set_flush_bits(unsigned mode) {
  const unsigned now = _mm_getcsr();
  const unsigned wanted = (now & ~kFlushSubnormalsMode) | (mode & kFlushSubnormalsMode);
  if (wanted != now) _mm_setcsr(wanted);
}
#endif

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

FloatModeScope::FloatModeScope(unsigned mode, unsigned restore_to) : restore_to_(restore_to) {
#ifdef BACKPROP_HAS_MXCSR
  set_flush_bits(mode);
#else
  (void)mode;
#endif
}

FloatModeScope::~FloatModeScope() {
#ifdef BACKPROP_HAS_MXCSR
  set_flush_bits(restore_to_);
#else
  (void)restore_to_;
#endif
}

unsigned resting_float_mode() {
  return resting_bits >= 0 ? unsigned(resting_bits) : float_mode();
}

TrainingFloatMode::TrainingFloatMode()
    : outermost_(resting_bits < 0),
      caller_bits_(float_mode()),
      scope_(training_mode(), caller_bits_) {
  if (outermost_) resting_bits = int(caller_bits_);
}

TrainingFloatMode::~TrainingFloatMode() {
  if (outermost_) resting_bits = -1;
}

}  // namespace backprop
