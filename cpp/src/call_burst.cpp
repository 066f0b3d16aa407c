// When a call of small work is in a burst (call_burst.hpp): two process-wide clocks, the last
// call's start or end and the last slow burst split, read and written without locks. A race
// between threads can misjudge one call, which costs time, never a result's bits.
#include "backprop/call_burst.hpp"

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

std::atomic<std::int64_t> last_call_ns{kLongAgo};
std::atomic<std::int64_t> last_slow_split_ns{kLongAgo};
std::atomic<std::int64_t> window_ns{kCallBurstWindowNs};
std::atomic<std::int64_t> slow_split_ns{kSlowBurstSplitNs};
std::atomic<std::int64_t> pause_ns{kSlowBurstSplitPauseNs};

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

BurstCall start_burst_call() {
  const std::int64_t now = now_ns();
  const std::int64_t before = last_call_ns.exchange(now, std::memory_order_relaxed);
  const std::int64_t window = window_ns.load(std::memory_order_relaxed);
  const bool paused = now - last_slow_split_ns.load(std::memory_order_relaxed) <
                      pause_ns.load(std::memory_order_relaxed);
  return {now, window > 0 && now - before < window && !paused};
}

void end_split_call(const BurstCall& call, bool split_for_burst, std::int64_t slow_scale) {
  const std::int64_t now = now_ns();
  last_call_ns.store(now, std::memory_order_relaxed);
  const std::int64_t slow_ns = slow_split_ns.load(std::memory_order_relaxed) * slow_scale;
  if (split_for_burst && now - call.started_ns >= slow_ns)
    last_slow_split_ns.store(now, std::memory_order_relaxed);
}

CallBurstSettings call_burst_settings() {
  return {window_ns.load(std::memory_order_relaxed), slow_split_ns.load(std::memory_order_relaxed),
          pause_ns.load(std::memory_order_relaxed)};
}

void set_call_burst_settings(const CallBurstSettings& settings) {
  if (settings.window_ns < 0 || settings.slow_split_ns < 0 || settings.pause_ns < 0)
    throw std::invalid_argument("every burst time must be a non-negative number of nanoseconds");
  window_ns.store(settings.window_ns, std::memory_order_relaxed);
  slow_split_ns.store(settings.slow_split_ns, std::memory_order_relaxed);
  pause_ns.store(settings.pause_ns, std::memory_order_relaxed);
  last_call_ns.store(kLongAgo, std::memory_order_relaxed);
  last_slow_split_ns.store(kLongAgo, std::memory_order_relaxed);
}

}  // namespace backprop
