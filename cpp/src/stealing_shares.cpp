// The test functions of stealing_shares.hpp.
#include "backprop/stealing_shares.hpp"

#include <chrono>
#include <memory>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace backprop {

std::vector<std::pair<index_t, bool>> stealing_shares_taken_in_turns(
    index_t count, int parts, const std::vector<int>& takers) {
  auto shares = std::make_unique<StealingShares>();
  shares->reset(count, parts);
  std::vector<std::pair<index_t, bool>> taken;
  for (int part : takers) {
    bool stolen = false;
    const index_t item = shares->take(part, parts, stolen);
    taken.emplace_back(item, stolen);
  }
  return taken;
}

std::vector<int> stealing_shares_race(index_t count, int parts, std::int64_t wait_ns) {
  auto shares = std::make_unique<StealingShares>();
  shares->reset(count, parts);
  const auto taker = std::make_unique<std::atomic<int>[]>(std::size_t(count));
  for (index_t item = 0; item < count; ++item) taker[item].store(-1, std::memory_order_relaxed);
  const index_t last_of_part_0 = Share(count, 0, parts).last - 1;
#pragma omp parallel num_threads(parts)
  {
#ifdef _OPENMP
    const int part = omp_get_thread_num();
#else
    const int part = 0;
#endif
    bool stolen = false;
    bool first = true;
    for (index_t item = shares->take(part, parts, stolen); item >= 0;
         item = shares->take(part, parts, stolen)) {
      int none = -1;
      if (!taker[item].compare_exchange_strong(none, part)) taker[item].store(-2);  // twice
      if (part == 0 && first && wait_ns > 0 && last_of_part_0 > item) {
        const auto until = std::chrono::steady_clock::now() + std::chrono::nanoseconds(wait_ns);
        while (taker[last_of_part_0].load() == -1 && std::chrono::steady_clock::now() < until) {
        }
      }
      first = false;
    }
  }
  std::vector<int> result(static_cast<std::size_t>(count));
  for (index_t item = 0; item < count; ++item) result[std::size_t(item)] = taker[item].load();
  return result;
}

}  // namespace backprop
