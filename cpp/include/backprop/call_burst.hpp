// Splitting work across threads pays only while the other threads are awake and have cores of
// their own: a small GEMM splits only in a burst of calls, and no work splits while another
// process takes their cores. Every kernel's parallel region (threads.hpp, TeamCall) asks here.
#pragma once

#include <cstdint>

namespace backprop {

// The start of a call, as start_burst_call records it.
struct BurstCall {
  std::int64_t started_ns;
  bool in_burst;  // a call started, or a split call ended, less than the burst window earlier
  std::int64_t team_idle_ns;  // since the last split call ended (huge if none did); within the
                              // burst window its threads are awake: they spin
  bool paused;  // a late thread stopped splits a short while ago
};

// Records a call's start (from any thread) and says whether it is in a burst.
BurstCall start_burst_call();

// Records the end of a call that ran on several threads: they are awake now. If they were
// awake at its start too, yet one of them started its share latest_start_delay_ns >= the late
// limit after the call opened its parallel region (or a fifth of that, and at least half the
// call's time, in a call that came within that fifth of the last split's end), another
// process had that thread's core. The third such call in a row (no
// judged call on time between them), each within the pause's length or twice its own time of
// the one before, pauses every split: for 50 times that call's time, at least the pause time
// and at most a second (or the pause time, if longer); for at least twice the last pause, up
// to the same limit, if that one ended less than its own length before.
void end_split_call(const BurstCall& call, std::int64_t latest_start_delay_ns);

// How many times a late thread has paused splits in this process (for benchmarks and tests).
std::int64_t late_thread_pauses();

// How long the current pause has left to run, in nanoseconds; 0 when splits are not paused (a
// benchmark waits it out, so that its next measurement does not start on one thread).
std::int64_t late_thread_pause_left_ns();

// The clock of the rule, in nanoseconds (steady).
std::int64_t burst_clock_ns();

// The rule's times, in nanoseconds (config.hpp's unless a test changed them).
struct CallBurstSettings {
  std::int64_t window_ns, late_start_ns, pause_ns;
};
CallBurstSettings call_burst_settings();
// For tests: every time must be >= 0. A window of 0 puts no call in a burst and never judges a
// thread late, a late limit of 0 makes every thread of an awake team late, a pause of 0 never
// pauses. Also forgets the calls so far: the next call is in no burst, and nothing is paused.
void set_call_burst_settings(const CallBurstSettings& settings);

}  // namespace backprop
