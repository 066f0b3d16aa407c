// The GEMM micro-kernel interface and its run-time choice among instruction-set paths.
#pragma once

#include "backprop/config.hpp"

namespace backprop {

// C[0:mr, 0:nr] = alpha * (packed A panel @ B panel) + beta * C over kc steps.
// a: MR x kc panel stored k-major, zero padded. b: kc rows of NR values, row p at b + p * b_step
// (b_step = NR for a packed panel; a row-major B with all NR columns present is read in
// place with b_step = ldb). When beta == 0, C is not read.
template <typename T>
using MicroKernel = void (*)(index_t kc, const T* a, const T* b, index_t b_step, T* c,
                             index_t ldc, T alpha, T beta, index_t mr, index_t nr);

enum class Isa : int { generic = 0, avx2 = 1 };

// The best path this CPU runs, unless force_isa chose one (tests and the benchmark pin paths).
Isa active_isa();
bool isa_supported(Isa isa);
void force_isa(Isa isa);  // throws std::invalid_argument when the CPU lacks it
void reset_isa();         // back to the automatic choice
const char* isa_name(Isa isa);

template <typename T>
MicroKernel<T> select_micro_kernel();

// One entry point per compiled path (each in its own translation unit, built with its flags).
void micro_kernel_generic_s6x16(index_t, const float*, const float*, index_t, float*, index_t, float,
                                float, index_t, index_t);
void micro_kernel_generic_d6x8(index_t, const double*, const double*, index_t, double*, index_t,
                               double, double, index_t, index_t);
void micro_kernel_avx2_s6x16(index_t, const float*, const float*, index_t, float*, index_t, float,
                             float, index_t, index_t);
void micro_kernel_avx2_d6x8(index_t, const double*, const double*, index_t, double*, index_t,
                            double, double, index_t, index_t);

}  // namespace backprop
