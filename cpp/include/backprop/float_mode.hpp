// Flushing subnormal numbers to zero in training: on by default, as TensorFlow and JAX do; IEEE
// arithmetic when the user asks. On x86-64 a multiply or FMA that meets or makes a subnormal
// float takes a microcode assist on some CPUs. With momentum above 0.5, the velocity of a weight
// whose gradient has become zero (a dead ReLU unit) decays into the subnormals and stays at the
// smallest one for good, since 0.9 times it rounds back to it: on an Intel Xeon, 784-128-10
// trained on inputs in [0, 1) ran 7x slower from its 16th epoch on (bench/RESULTS.md).
#pragma once

#include <vector>

namespace backprop {

// The x86-64 MXCSR bits for flush-to-zero (results) and denormals-are-zero (inputs).
constexpr unsigned kFlushSubnormalsMode = 0x8040u;

// Whether train_step, train_epoch and Optimizer.step (its binding) run with subnormals flushed
// to zero; process-wide.
void set_flush_subnormals(bool on);
bool flush_subnormals();

// Whether this build can flush (x86-64: the MXCSR register); elsewhere the switch does nothing.
bool flush_supported();

// The calling thread's flush bits (always 0 where flush_supported() is false).
unsigned float_mode();

// The flush bits each thread of a `threads`-thread OpenMP team holds on entering a region that
// sets none: what other code sharing OpenMP's thread pool meets (tests check it stays 0).
std::vector<unsigned> team_float_modes(int threads);

// Gives the calling thread the flush bits `mode` for the scope's lifetime, then the bits
// `restore_to` (those two bits only: exception flags raised inside stay raised). Every thread
// of a kernel's team takes its caller's bits (threads.hpp), so a result's bits do not depend on
// the thread count either way.
class FloatModeScope {
 public:
  FloatModeScope(unsigned mode, unsigned restore_to);
  ~FloatModeScope();
  FloatModeScope(const FloatModeScope&) = delete;
  FloatModeScope& operator=(const FloatModeScope&) = delete;

 private:
  unsigned restore_to_;
};

// The flush bits the workers of the calling thread's parallel regions are left with when a
// region ends: the bits this thread had before the training call it is in, else its own (so
// outside training, workers take the caller's bits, as they had them at birth). A
// worker that OpenMP starts inside a flushing call is born with its creator's bits, and would
// otherwise flush in every later region of the process, other libraries' included.
unsigned resting_float_mode();

// A training call's floating-point mode, for its lifetime: subnormals flushed to zero when
// flush_subnormals() is on (and the build can), else the caller's bits; the caller's bits before
// the call are what its workers rest in (resting_float_mode). Calls nested inside keep both.
class TrainingFloatMode {
 public:
  TrainingFloatMode();
  ~TrainingFloatMode();
  TrainingFloatMode(const TrainingFloatMode&) = delete;
  TrainingFloatMode& operator=(const TrainingFloatMode&) = delete;

 private:
  bool outermost_;
  unsigned caller_bits_;
  FloatModeScope scope_;
};

}  // namespace backprop
