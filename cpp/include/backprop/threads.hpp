// The thread count every kernel uses (OpenMP when built with it, one thread otherwise).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "backprop/call_burst.hpp"
#include "backprop/config.hpp"
#include "backprop/float_mode.hpp"

namespace backprop {

void set_num_threads(int n);  // n >= 1; always 1 in a child made by fork()
int get_num_threads();
bool openmp_enabled();
int thread_index();  // inside a parallel region: this thread's number, 0 to team_size() - 1
int team_size();     // inside a parallel region: its number of threads (1 outside)
bool in_parallel_region();  // whether this thread runs a share of a region of 2+ threads
bool in_forked_child();  // true after fork() in the child: kernels stay on one thread there

// The share [first, last) of `count` items that part `part` of `parts` takes (a static split).
struct Share {
  index_t first, last;
  Share(index_t count, int part, int parts)
      : first(count * part / parts), last(count * (part + 1) / parts) {}
};

// The threads of one call under the rule of call_burst.hpp: `wanted` of them, unless a late
// thread has paused splits, or the work is small (`only_in_burst`) and the call comes in no
// burst. run() runs the work on them and notes when each thread starts; a split call's end
// goes on record with the latest start when the TeamCall goes.
class TeamCall {
 public:
  TeamCall(int wanted, bool only_in_burst) {
    if (wanted <= 1 || in_parallel_region()) return;
    call_ = start_burst_call();
    if (call_.paused || (only_in_burst && !call_.in_burst)) return;
    count_ = wanted;
  }
  ~TeamCall() {
    if (count_ > 1) end_split_call(call_, latest_start_ns_.load() - opened_ns_);
  }
  TeamCall(const TeamCall&) = delete;
  TeamCall& operator=(const TeamCall&) = delete;

  // The team of one, which puts nothing on record: for work inside another team's share.
  static const TeamCall& one_thread() {
    static const TeamCall single(1, false);
    return single;
  }

  int count() const { return count_; }

  // Runs body(part, parts) on each thread of the team, in the caller's floating-point mode
  // (the workers are then left in its resting mode, float_mode.hpp); a team of one runs
  // body(0, 1) on the calling thread with no OpenMP call at all (even a one-thread team's
  // region ends with a system call, about a microsecond).
  template <typename Body>
  void run(Body&& body) const {
    if (count_ <= 1) {
      body(0, 1);
      return;
    }
    const unsigned mode = float_mode(), resting = resting_float_mode();
    opened_ns_ = burst_clock_ns();
    latest_start_ns_.store(opened_ns_);
#pragma omp parallel num_threads(count_)
    {
      note_start();
      const FloatModeScope caller_mode(mode, thread_index() == 0 ? mode : resting);
      body(thread_index(), team_size());
    }
  }

 private:
  void note_start() const {
    const std::int64_t now = burst_clock_ns();
    std::int64_t seen = latest_start_ns_.load();
    while (seen < now && !latest_start_ns_.compare_exchange_weak(seen, now)) {
    }
  }

  int count_ = 1;
  BurstCall call_{};
  mutable std::int64_t opened_ns_ = 0;
  mutable std::atomic<std::int64_t> latest_start_ns_{0};
};

// Runs body(i) for every i in [0, count): split statically over get_num_threads() threads when
// `parallel` (and splits are not paused: TeamCall), else a plain loop on the calling thread.
template <typename Body>
void parallel_for(index_t count, bool parallel, Body&& body) {
  const TeamCall team(parallel ? get_num_threads() : 1, false);
  team.run([&](int part, int parts) {
    const Share mine(count, part, parts);
    for (index_t i = mine.first; i < mine.last; ++i) body(i);
  });
}

// Runs body(first, count) over [0, n) for elementwise work: as one call, or, when `parallel`
// and n reaches kElementwiseParallelMin, as one contiguous share per thread. The shares are
// equal to within kElementwiseAlign elements and start on multiples of it (a cache line or
// more). Equal shares rather than fixed blocks: tiny's 101,632 parameters made 7 blocks of
// 2^14, and the thread given 4 of them kept the other waiting. Elementwise results do not
// depend on the split, so any thread count gives the same bytes. share_count: how many shares.
inline int share_count(index_t n, bool parallel) {
  return parallel && n >= kElementwiseParallelMin ? get_num_threads() : 1;
}

template <typename Body>
void for_each_share(index_t n, bool parallel, Body&& body) {
  const TeamCall team(share_count(n, parallel), false);
  const index_t units = (n + kElementwiseAlign - 1) / kElementwiseAlign;
  team.run([&](index_t part, index_t parts) {
    const index_t first = std::min(n, units * part / parts * kElementwiseAlign);
    const index_t last = std::min(n, units * (part + 1) / parts * kElementwiseAlign);
    if (first < last) body(first, last - first);
  });
}

}  // namespace backprop
