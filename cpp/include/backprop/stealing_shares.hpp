// Shares of a count of work items that rebalance themselves: each thread takes its own share
// (Share's fixed split) from the front, then items from the back of the other threads' shares. With
// threads of equal speed every thread runs exactly its own share; when one is slowed (a
// neighbour on its core's other hardware thread, say), the others finish its last items rather
// than wait at the next barrier. Which thread runs an item never changes what the item computes.
#pragma once

#include <atomic>
#include <cstdint>
#include <utility>
#include <vector>

#include "backprop/threads.hpp"

namespace backprop {

class StealingShares {
 public:
  // The most threads it keeps shares for; a larger team splits statically (Share).
  static constexpr int kMaxParts = 64;

  static bool fits(int parts) { return parts > 1 && parts <= kMaxParts; }

  // Each thread's share of `count` items. Called by one thread while no other takes (between
  // two barriers of the team).
  void reset(index_t count, int parts) {
    for (int part = 0; part < parts; ++part) {
      const Share mine(count, part, parts);
      ranges_[part].value.store(pack(mine.first, mine.last), std::memory_order_relaxed);
    }
  }

  // The next item for thread `part` (its own share's front, else the back of another's), or
  // -1 when every item is taken. Sets `stolen` when the item came from another share.
  index_t take(int part, int parts, bool& stolen) {
    stolen = false;
    index_t item = take_front(ranges_[part].value);
    for (int step = 1; item < 0 && step < parts; ++step) {
      item = take_back(ranges_[(part + step) % parts].value);
      stolen = item >= 0;
    }
    return item;
  }

 private:
  // A share's remaining items [first, last) in one word, so that its owner (taking first) and a
  // thief (taking last - 1) never both take the last item.
  static std::uint64_t pack(index_t first, index_t last) {
    return std::uint64_t(first) | std::uint64_t(last) << 32;
  }
  static index_t first_of(std::uint64_t range) { return index_t(range & 0xffffffffu); }
  static index_t last_of(std::uint64_t range) { return index_t(range >> 32); }

  static index_t take_front(std::atomic<std::uint64_t>& range) {
    std::uint64_t seen = range.load(std::memory_order_relaxed);
    while (first_of(seen) < last_of(seen)) {
      if (range.compare_exchange_weak(seen, pack(first_of(seen) + 1, last_of(seen)),
                                      std::memory_order_relaxed))
        return first_of(seen);
    }
    return -1;
  }

  static index_t take_back(std::atomic<std::uint64_t>& range) {
    std::uint64_t seen = range.load(std::memory_order_relaxed);
    while (first_of(seen) < last_of(seen)) {
      if (range.compare_exchange_weak(seen, pack(first_of(seen), last_of(seen) - 1),
                                      std::memory_order_relaxed))
        return last_of(seen) - 1;
    }
    return -1;
  }

  // One cache line per share: a thread taking from its own share does not pull the others'.
  // Left unset until reset(), so that a GEMM that keeps the fixed split pays nothing for it.
  struct alignas(64) Range {
    std::atomic<std::uint64_t> value;
  };
  Range ranges_[kMaxParts];
};

// For the tests: fresh shares of `count` items among `parts` threads, taken from by the listed
// parts one after another; each take's item (-1: none left) and whether it was stolen.
std::vector<std::pair<index_t, bool>> stealing_shares_taken_in_turns(
    index_t count, int parts, const std::vector<int>& takers);

// For the tests: `parts` threads (an OpenMP team; fewer if it starts fewer) take the `count`
// items of fresh shares at once. With `wait_ns` > 0, part 0, having taken its first item, waits
// until another thread has taken the last item of its share, or wait_ns have passed. The part
// that took each item, -1 for none, -2 for an item taken twice.
std::vector<int> stealing_shares_race(index_t count, int parts, std::int64_t wait_ns);

}  // namespace backprop
