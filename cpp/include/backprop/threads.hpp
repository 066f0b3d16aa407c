// The thread count every kernel uses (OpenMP when built with it, one thread otherwise).
#pragma once

#include <algorithm>

#include "backprop/config.hpp"

namespace backprop {

void set_num_threads(int n);  // n >= 1; always 1 in a child made by fork()
int get_num_threads();
bool openmp_enabled();
int thread_index();  // inside a parallel region: this thread's number, 0 to team_size() - 1
int team_size();     // inside a parallel region: its number of threads (1 outside)
bool in_forked_child();  // true after fork() in the child: kernels stay on one thread there

// Runs body(i) for every i in [0, count): split statically over get_num_threads() threads when
// `parallel`, else a plain loop on the calling thread. Not an OpenMP `if` clause: a one-thread
// team still makes a system call as it ends, about a microsecond on every small kernel.
template <typename Body>
void parallel_for(index_t count, bool parallel, Body&& body) {
  const int threads = parallel ? get_num_threads() : 1;
  if (threads <= 1) {
    for (index_t i = 0; i < count; ++i) body(i);
    return;
  }
#pragma omp parallel for schedule(static) num_threads(threads)
  for (index_t i = 0; i < count; ++i) body(i);
}

// Runs body(first, count) over [0, n) in blocks of kElementwiseBlock elements, the same blocks
// for any thread count, split over the threads when `parallel` and n reaches
// kElementwiseParallelMin.
template <typename Body>
void for_each_block(index_t n, bool parallel, Body&& body) {
  const index_t blocks = (n + kElementwiseBlock - 1) / kElementwiseBlock;
  parallel_for(blocks, parallel && n >= kElementwiseParallelMin, [&](index_t block) {
    const index_t first = block * kElementwiseBlock;
    body(first, std::min(kElementwiseBlock, n - first));
  });
}

}  // namespace backprop
