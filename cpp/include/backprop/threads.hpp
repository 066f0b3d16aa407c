// The thread count every kernel uses (OpenMP when built with it, one thread otherwise).
#pragma once

#include <algorithm>

#include "backprop/config.hpp"
#include "backprop/float_mode.hpp"

namespace backprop {

void set_num_threads(int n);  // n >= 1; always 1 in a child made by fork()
int get_num_threads();
bool openmp_enabled();
int thread_index();  // inside a parallel region: this thread's number, 0 to team_size() - 1
int team_size();     // inside a parallel region: its number of threads (1 outside)
bool in_forked_child();  // true after fork() in the child: kernels stay on one thread there
// Starts OpenMP's get_num_threads() - 1 worker threads now, if they are not running yet (an
// empty parallel region): a new thread takes its creator's floating-point mode.
void start_worker_threads();

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
  const unsigned mode = float_mode();
#pragma omp parallel num_threads(threads)
  {
    const FloatModeScope caller_mode(mode);
#pragma omp for schedule(static)
    for (index_t i = 0; i < count; ++i) body(i);
  }
}

// Runs body(first, count) over [0, n) for elementwise work: as one call, or, when `parallel`
// and n reaches kElementwiseParallelMin, as one contiguous share per thread. The shares are
// equal to within kElementwiseAlign elements and start on multiples of it (a cache line or
// more). Equal shares rather than fixed blocks: tiny's 101,632 parameters made 7 blocks of
// 2^14, and the thread given 4 of them kept the other waiting. Elementwise results do not
// depend on the split, so any thread count gives the same bytes.
template <typename Body>
void for_each_share(index_t n, bool parallel, Body&& body) {
  const int threads = parallel && n >= kElementwiseParallelMin ? get_num_threads() : 1;
  if (threads <= 1) {
    if (n > 0) body(index_t(0), n);
    return;
  }
  const index_t units = (n + kElementwiseAlign - 1) / kElementwiseAlign;
  const unsigned mode = float_mode();
#pragma omp parallel num_threads(threads)
  {
    const FloatModeScope caller_mode(mode);
    const index_t part = thread_index(), parts = team_size();
    const index_t first = std::min(n, units * part / parts * kElementwiseAlign);
    const index_t last = std::min(n, units * (part + 1) / parts * kElementwiseAlign);
    if (first < last) body(first, last - first);
  }
}

}  // namespace backprop
