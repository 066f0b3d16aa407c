// Thread-count control shared by every kernel: one process-wide count, so a count set from one
// Python thread holds for kernels called from any other.
#include "backprop/threads.hpp"

#include <pthread.h>

#include <atomic>
#include <stdexcept>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace backprop {
namespace {

// 0 until first asked: then OpenMP's own default, which follows OMP_NUM_THREADS.
std::atomic<int> thread_count{0};
std::atomic<bool> forked{false};

// GNU OpenMP's thread pool does not survive fork(): a child that enters a parallel region with
// more than one thread waits forever for workers that were never copied. Children therefore
// run every kernel on the calling thread.
void on_fork_in_child() {
  forked.store(true, std::memory_order_relaxed);
  thread_count.store(1, std::memory_order_relaxed);
}

const int fork_handler_installed = pthread_atfork(nullptr, nullptr, on_fork_in_child);

}  // namespace

bool in_forked_child() { return forked.load(std::memory_order_relaxed); }

void set_num_threads(int n) {
  if (n < 1) throw std::invalid_argument("n must be a positive number of threads");
  (void)fork_handler_installed;
  thread_count.store(in_forked_child() ? 1 : n, std::memory_order_relaxed);
}

int get_num_threads() {
  int n = thread_count.load(std::memory_order_relaxed);
  if (n > 0) return n;
#ifdef _OPENMP
  n = omp_get_max_threads();
#else
  n = 1;
#endif
  thread_count.store(n, std::memory_order_relaxed);
  return n;
}

int thread_index() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

int team_size() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}

bool in_parallel_region() {
#ifdef _OPENMP
  return omp_in_parallel() != 0;
#else
  return false;
#endif
}

bool openmp_enabled() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

}  // namespace backprop
