// When a call of small work is in a burst, and when splits pause (call_burst.hpp): a few
// process-wide clocks, read and written without locks. A race between threads can misjudge a
// call, and so start or skip a pause: that costs time, never a result's bits.
#include "backprop/call_burst.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <limits>
#include <stdexcept>

#include "backprop/config.hpp"

namespace backprop {
namespace {

// Far enough in the past that no call falls within a window of it, near enough that now minus
// it cannot overflow.
constexpr std::int64_t kLongAgo = std::numeric_limits<std::int64_t>::min() / 4;

std::atomic<std::int64_t> last_call_ns{kLongAgo};       // a call's start or a split's end
std::atomic<std::int64_t> last_split_end_ns{kLongAgo};
// The end of the last judged split if it started late, else kLongAgo; the late calls in a row.
std::atomic<std::int64_t> last_late_ns{kLongAgo};
std::atomic<int> late_streak{0};
std::atomic<std::int64_t> paused_until_ns{kLongAgo};
std::atomic<std::int64_t> last_pause_ns{0};  // the length of the last pause
std::atomic<std::int64_t> pauses{0};
std::atomic<std::int64_t> window_ns{kCallBurstWindowNs};
std::atomic<std::int64_t> late_start_ns{kLateThreadNs};
std::atomic<std::int64_t> pause_ns{kLateThreadPauseNs};

}  // namespace

std::int64_t burst_clock_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

BurstCall start_burst_call() {
  const std::int64_t now = burst_clock_ns();
  const std::int64_t before = last_call_ns.exchange(now, std::memory_order_relaxed);
  const std::int64_t window = window_ns.load(std::memory_order_relaxed);
  const std::int64_t idle = now - last_split_end_ns.load(std::memory_order_relaxed);
  return {now, window > 0 && now - before < window, idle,
          now < paused_until_ns.load(std::memory_order_relaxed)};
}

void end_split_call(const BurstCall& call, std::int64_t latest_start_delay_ns) {
  const std::int64_t now = burst_clock_ns();
  last_call_ns.store(now, std::memory_order_relaxed);
  last_split_end_ns.store(now, std::memory_order_relaxed);
  const std::int64_t pause = pause_ns.load(std::memory_order_relaxed);
  // Judged only if its threads were awake at its start: a split ended within the window.
  const std::int64_t window = window_ns.load(std::memory_order_relaxed);
  if (window == 0 || call.team_idle_ns >= window || pause == 0) return;
  // Late: by the late limit, or, in a short call that followed the last split within a fifth
  // of it (the threads surely spun: no wake-up in the delay), by that fifth and by at least the
  // work of a thread's share (the call's time less the delay): such a split ran slower than
  // one thread would have.
  const std::int64_t limit = late_start_ns.load(std::memory_order_relaxed);
  const std::int64_t short_limit = limit / 5;
  const std::int64_t took = now - call.started_ns;
  const std::int64_t delay = latest_start_delay_ns;
  const bool late = delay >= limit || (call.team_idle_ns < short_limit && delay > 0 &&
                                       delay >= short_limit && 2 * delay >= took);
  // A late start or two can be hiccups (a kernel thread, the hypervisor, a thread's first
  // calls); kLateCallsToPause judged calls in a row that start late, each soon after the one
  // before, mean another process keeps taking a core. (An idle but noisy guest had a few late
  // calls a second among thousands, and two in a row as its threads started.)
  const std::int64_t late_before =
      last_late_ns.exchange(late ? now : kLongAgo, std::memory_order_relaxed);
  if (!late) return;  // (the next late call's streak starts over: it is not soon after this)
  // The pause: kLateThreadPauseRatio times this call's time, capped at the longest pause, but
  // not below the pause time, nor below twice the last pause (up to the longest) when that one
  // ended less than its own length before: a process that keeps a core busy then costs fewer
  // late calls.
  const std::int64_t longest = std::max(pause, kLateThreadLongestPauseNs);
  std::int64_t length =
      std::max(pause, took < longest / kLateThreadPauseRatio ? kLateThreadPauseRatio * took
                                                             : longest);
  const std::int64_t last_length = last_pause_ns.load(std::memory_order_relaxed);
  if (now - paused_until_ns.load(std::memory_order_relaxed) < last_length)
    length = std::max(length, last_length < longest / 2 ? 2 * last_length : longest);
  const bool soon = now - late_before < std::max(length, 2 * took);
  const int streak =
      soon ? std::min(late_streak.load(std::memory_order_relaxed) + 1, kLateCallsToPause) : 1;
  late_streak.store(streak, std::memory_order_relaxed);
  if (streak < kLateCallsToPause) return;
  const std::int64_t latest = std::numeric_limits<std::int64_t>::max();
  paused_until_ns.store(length < latest - now ? now + length : latest, std::memory_order_relaxed);
  last_pause_ns.store(length, std::memory_order_relaxed);
  pauses.fetch_add(1, std::memory_order_relaxed);
}

std::int64_t late_thread_pauses() { return pauses.load(std::memory_order_relaxed); }

std::int64_t late_thread_pause_left_ns() {
  const std::int64_t left = paused_until_ns.load(std::memory_order_relaxed) - burst_clock_ns();
  return left > 0 ? left : 0;
}

CallBurstSettings call_burst_settings() {
  return {window_ns.load(std::memory_order_relaxed), late_start_ns.load(std::memory_order_relaxed),
          pause_ns.load(std::memory_order_relaxed)};
}

void set_call_burst_settings(const CallBurstSettings& settings) {
  if (settings.window_ns < 0 || settings.late_start_ns < 0 || settings.pause_ns < 0)
    throw std::invalid_argument("every burst time must be a non-negative number of nanoseconds");
  window_ns.store(settings.window_ns, std::memory_order_relaxed);
  late_start_ns.store(settings.late_start_ns, std::memory_order_relaxed);
  pause_ns.store(settings.pause_ns, std::memory_order_relaxed);
  last_call_ns.store(kLongAgo, std::memory_order_relaxed);
  last_split_end_ns.store(kLongAgo, std::memory_order_relaxed);
  last_late_ns.store(kLongAgo, std::memory_order_relaxed);
  late_streak.store(0, std::memory_order_relaxed);
  paused_until_ns.store(kLongAgo, std::memory_order_relaxed);
  last_pause_ns.store(0, std::memory_order_relaxed);
}

}  // namespace backprop
