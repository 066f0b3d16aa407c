// Splitting small work across threads pays only while the other threads are awake and have
// cores of their own: in a burst of calls, not after a pause, and not while another process
// takes their cores. The GEMM's thread count (gemm.cpp, GemmThreads) asks here.
#pragma once

#include <cstdint>

namespace backprop {

// The start of a call, as start_burst_call records it.
struct BurstCall {
  std::int64_t started_ns;
  bool in_burst;  // the call before it came less than the burst window earlier, and no burst
                  // split was slow within the last pause
};

// Records a call's start (from any thread) and says whether it is in a burst.
BurstCall start_burst_call();

// Records the end of a call that ran on several threads: the threads are awake now. A call
// that split only for its burst and took at least slow_scale times the slow limit (the other
// threads were not running: another process had their cores) stops burst splits for the pause.
void end_split_call(const BurstCall& call, bool split_for_burst, std::int64_t slow_scale);

// The rule's times, in nanoseconds (config.hpp's unless a test changed them).
struct CallBurstSettings {
  std::int64_t window_ns, slow_split_ns, pause_ns;
};
CallBurstSettings call_burst_settings();
// For tests: every time must be >= 0. A window of 0 puts no call in a burst, a slow limit of 0
// makes every burst split slow, a pause of 0 never pauses. Also forgets the calls so far: the
// next call is in no burst, and no slow split pauses the rule.
void set_call_burst_settings(const CallBurstSettings& settings);

}  // namespace backprop
