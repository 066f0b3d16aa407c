// The thread count every kernel uses (OpenMP when built with it, one thread otherwise).
#pragma once

namespace backprop {

void set_num_threads(int n);  // n >= 1
int get_num_threads();
bool openmp_enabled();

}  // namespace backprop
