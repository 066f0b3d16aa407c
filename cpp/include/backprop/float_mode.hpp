// Flushing subnormal numbers to zero in training: off by default (IEEE arithmetic), on when the
// user asks. On x86-64 a multiply or FMA that meets or makes a subnormal float takes a
// microcode assist on some CPUs: an Intel Xeon trained deep 2.4x slower once a memorized batch
// had driven its gradients subnormal.
#pragma once

#include <vector>

namespace backprop {

// The x86-64 MXCSR bits for flush-to-zero (results) and denormals-are-zero (inputs).
constexpr unsigned kFlushSubnormalsMode = 0x8040u;

// Whether train_step and train_epoch run with subnormals flushed to zero; process-wide.
void set_flush_subnormals(bool on);
bool flush_subnormals();

// Whether this build can flush (x86-64: the MXCSR register); elsewhere the switch does nothing.
bool flush_supported();

// The calling thread's flush bits (always 0 where flush_supported() is false).
unsigned float_mode();

// The flush bits each thread of a `threads`-thread OpenMP team holds on entering a region that
// sets none: what other code sharing OpenMP's thread pool meets (tests check it stays 0).
std::vector<unsigned> team_float_modes(int threads);

// Gives the calling thread the flush bits `mode` for the scope's lifetime, then restores its
// own (those two bits only: exception flags raised inside stay raised). Every thread of a kernel's team takes its caller's bits (threads.hpp, gemm.cpp), so a
// result's bits do not depend on the thread count either way.
class FloatModeScope {
 public:
  explicit FloatModeScope(unsigned mode);
  ~FloatModeScope();
  FloatModeScope(const FloatModeScope&) = delete;
  FloatModeScope& operator=(const FloatModeScope&) = delete;

 private:
  unsigned saved_;
  bool changed_;
};

}  // namespace backprop
