// Picks the GEMM micro-kernel for this CPU at run time, so one build runs everywhere.
#include <atomic>
#include <stdexcept>
#include <string>

#include "backprop/gemm_micro_kernel.hpp"

namespace backprop {
namespace {

constexpr int kAutomatic = -1;
std::atomic<int> forced_isa{kAutomatic};

bool cpu_has(Isa isa) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  // libgcc reports AVX and AVX-512 only when the OS saves their registers (XCR0).
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  switch (isa) {
    case Isa::generic:
      return true;
    case Isa::avx2:
      return avx2;
    case Isa::avx512:
      return avx2 && __builtin_cpu_supports("avx512f");
  }
  return false;
#else
  return isa == Isa::generic;
#endif
}

Isa detect_isa() {
  Isa best = Isa::generic;
  for (Isa isa : kAllIsas)
    if (cpu_has(isa)) best = isa;
  return best;
}

}  // namespace

bool isa_supported(Isa isa) { return cpu_has(isa); }

Isa active_isa() {
  const int forced = forced_isa.load(std::memory_order_relaxed);
  if (forced != kAutomatic) return static_cast<Isa>(forced);
  static const Isa detected = detect_isa();
  return detected;
}

void force_isa(Isa isa) {
  if (!isa_supported(isa))
    throw std::invalid_argument(std::string("this CPU cannot run the ") + isa_name(isa) +
                                " GEMM path");
  forced_isa.store(static_cast<int>(isa), std::memory_order_relaxed);
}

void reset_isa() { forced_isa.store(kAutomatic, std::memory_order_relaxed); }

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::generic:
      return "generic";
    case Isa::avx2:
      return "avx2";
    case Isa::avx512:
      return "avx512";
  }
  return "unknown";
}

template <>
TileKernels<float> select_tile_kernels<float>(Isa isa) {
  switch (isa) {
    case Isa::avx512:
      return {micro_kernel_avx512_s14x32, nullptr};
    case Isa::avx2:
      return {micro_kernel_avx2_s6x16, column_kernel_avx2_s6x16};
    case Isa::generic:
      break;
  }
  return {micro_kernel_generic_s6x16, column_kernel_generic_s6x16};
}

template <>
TileKernels<double> select_tile_kernels<double>(Isa isa) {
  switch (isa) {
    case Isa::avx512:
      return {micro_kernel_avx512_d14x16, nullptr};
    case Isa::avx2:
      return {micro_kernel_avx2_d6x8, column_kernel_avx2_d6x8};
    case Isa::generic:
      break;
  }
  return {micro_kernel_generic_d6x8, column_kernel_generic_d6x8};
}

template <>
NarrowKernel<float> select_narrow_kernel<float>(Isa isa) {
  switch (isa) {
    case Isa::avx512:
      return {narrow_tn_avx512_s, 16 * kNarrowAvx512Vectors};
    case Isa::avx2:
      return {narrow_tn_avx2_s, 8 * kNarrowAvx2Vectors};
    case Isa::generic:
      break;
  }
  return {};
}

template <>
NarrowKernel<double> select_narrow_kernel<double>(Isa isa) {
  switch (isa) {
    case Isa::avx512:
      return {narrow_tn_avx512_d, 8 * kNarrowAvx512Vectors};
    case Isa::avx2:
      return {narrow_tn_avx2_d, 4 * kNarrowAvx2Vectors};
    case Isa::generic:
      break;
  }
  return {};
}

}  // namespace backprop
