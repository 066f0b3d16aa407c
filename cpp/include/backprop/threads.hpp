// The thread count every kernel uses (OpenMP when built with it, one thread otherwise).
#pragma once

namespace backprop {

void set_num_threads(int n);  // n >= 1; always 1 in a child made by fork()
int get_num_threads();
bool openmp_enabled();
int thread_index();  // inside a parallel region: this thread's number, 0 to team_size() - 1
int team_size();     // inside a parallel region: its number of threads (1 outside)
bool in_forked_child();  // true after fork() in the child: kernels stay on one thread there

}  // namespace backprop
