// The AVX2+FMA micro-kernels: the same body, built with -mavx2 -mfma (see CMakeLists.txt) and
// called only when the CPU reports both.
#include "backprop/gemm_micro_kernel.hpp"
#include "micro_kernel_body.hpp"

namespace backprop {

void micro_kernel_avx2_s6x16(index_t kc, const float* a, const float* b, float* c, index_t ldc,
                             float alpha, float beta, index_t mr, index_t nr) {
  micro_kernel_body<float, 6, 16>(kc, a, b, c, ldc, alpha, beta, mr, nr);
}

void micro_kernel_avx2_d6x8(index_t kc, const double* a, const double* b, double* c, index_t ldc,
                            double alpha, double beta, index_t mr, index_t nr) {
  micro_kernel_body<double, 6, 8>(kc, a, b, c, ldc, alpha, beta, mr, nr);
}

}  // namespace backprop
