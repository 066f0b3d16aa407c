// backprop-bench: measured FMA peak, GEMM GFLOP/s against that peak and gemm_ref, and
// training-step samples/s against the FLOP bound; plain tables on stdout. With --model, the
// forward checksum and inference / training samples/s of a saved model file instead.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__x86_64__) || defined(__i386__)
#define BACKPROP_BENCH_X86 1
#include <immintrin.h>
#endif

#include "backprop/call_burst.hpp"
#include "backprop/config.hpp"
#include "backprop/gemm.hpp"
#include "backprop/gemm_micro_kernel.hpp"
#include "backprop/model_file.hpp"
#include "backprop/threads.hpp"
#include "backprop/train.hpp"

namespace {

using backprop::index_t;

// ---------------------------------------------------------------------------------------------
// Options

enum class DtypeChoice { f32, f64, both };

struct Options {
  int threads = 0;  // 0: leave the library's default (OMP_NUM_THREADS or all cores)
  std::string isa;  // empty: automatic
  DtypeChoice dtype = DtypeChoice::both;
  bool quick = false;
  bool full = false;
  bool dtype_given = false;
  std::string model;      // --model: benchmark this model file instead of the tables
  index_t batch = 0;      // --batch: rows per call for --model (0: the default)
};

constexpr index_t kDefaultModelBatch = 64;
constexpr index_t kMaxModelBatch = index_t(1) << 24;

void print_usage(std::FILE* out) {
  std::fprintf(out,
               "usage: backprop-bench [--threads N] [--isa generic|avx2|avx512] [--dtype f32|f64|both]\n"
               "                      [--quick] [--full] [--help]\n"
               "       backprop-bench --model PATH [--batch N] [--threads N] [--isa NAME]\n"
               "                      [--quick]\n"
               "\n"
               "Measures the FMA peak of this CPU, backprop::gemm against that peak and against\n"
               "backprop::gemm_ref, and backprop::train_step samples/s against the FLOP bound.\n"
               "float32 1024^3 is also timed in rounds, each right after a run of the peak loop,\n"
               "and the median of the rounds' ratios printed (not with --dtype f64).\n"
               "\n"
               "  --threads N   threads for every kernel (backprop::set_num_threads); default:\n"
               "                OMP_NUM_THREADS, else all cores\n"
               "  --isa NAME    pin the GEMM micro-kernel path (backprop::force_isa)\n"
               "  --dtype D     GEMM table dtypes (default both); the training table runs in\n"
               "                float32, or float64 with --dtype f64\n"
               "  --quick       fewer shapes and short timings (CI smoke test, under 10 s)\n"
               "  --full        add the 2048^3 GEMM and the wide 1024-4096-4096-1024 network\n"
               "  --model PATH  instead of the tables: load a model file (backprop's save; its\n"
               "                dtype is the file's), print its architecture, the forward\n"
               "                checksum on x[i][j] = sin(0.37 i + 0.11 j), and inference and\n"
               "                train_step samples/s; a file it cannot read exits with status 2\n"
               "  --batch N     rows per call with --model (default 64)\n"
               "  --help        this text\n");
}

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "backprop-bench: %s (try --help)\n", message.c_str());
  std::exit(2);
}

Options parse_options(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    bool has_inline_value = false;
    const std::size_t eq = arg.find('=');
    if (arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_inline_value = true;
    }
    auto take_value = [&]() -> std::string {
      if (has_inline_value) return value;
      if (i + 1 >= argc) usage_error("option " + arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      print_usage(stdout);
      std::exit(0);
    } else if (arg == "--quick" && !has_inline_value) {
      opt.quick = true;
    } else if (arg == "--full" && !has_inline_value) {
      opt.full = true;
    } else if (arg == "--threads") {
      const std::string text = take_value();
      char* end = nullptr;
      const long n = std::strtol(text.c_str(), &end, 10);
      if (text.empty() || *end != '\0' || n < 1 || n > 4096)
        usage_error("--threads needs a whole number from 1 to 4096, got '" + text + "'");
      opt.threads = int(n);
    } else if (arg == "--isa") {
      opt.isa = take_value();
      if (opt.isa != "generic" && opt.isa != "avx2" && opt.isa != "avx512")
        usage_error("--isa must be generic, avx2 or avx512, got '" + opt.isa + "'");
    } else if (arg == "--dtype") {
      const std::string text = take_value();
      if (text == "f32" || text == "float32") {
        opt.dtype = DtypeChoice::f32;
      } else if (text == "f64" || text == "float64") {
        opt.dtype = DtypeChoice::f64;
      } else if (text == "both") {
        opt.dtype = DtypeChoice::both;
      } else {
        usage_error("--dtype must be f32, f64 or both, got '" + text + "'");
      }
      opt.dtype_given = true;
    } else if (arg == "--model") {
      opt.model = take_value();
      if (opt.model.empty()) usage_error("--model needs a file path");
    } else if (arg == "--batch") {
      const std::string text = take_value();
      char* end = nullptr;
      errno = 0;
      const long long n = std::strtoll(text.c_str(), &end, 10);
      if (text.empty() || *end != '\0' || errno != 0 || n < 1 || n > kMaxModelBatch)
        usage_error("--batch needs a whole number from 1 to " + std::to_string(kMaxModelBatch) +
                    ", got '" + text + "'");
      opt.batch = index_t(n);
    } else {
      usage_error("unknown option '" + std::string(argv[i]) + "'");
    }
  }
  if (opt.model.empty() && opt.batch != 0) usage_error("--batch goes with --model");
  if (!opt.model.empty() && (opt.dtype_given || opt.full))
    usage_error("--dtype and --full do not apply with --model (the file sets the dtype)");
  if (opt.batch == 0) opt.batch = kDefaultModelBatch;
  return opt;
}

// ---------------------------------------------------------------------------------------------
// Small helpers

double seconds_now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double median(std::vector<double> values) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const std::size_t mid = values.size() / 2;
  return values.size() % 2 ? values[mid] : 0.5 * (values[mid - 1] + values[mid]);
}

std::string cpu_model_name() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  // x86 reports "model name"; some ARM kernels only "Hardware" or "Processor".
  std::string fallback;
  while (std::getline(cpuinfo, line)) {
    const std::size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon);
    key.erase(key.find_last_not_of(" \t") + 1);
    std::string value = line.substr(colon + 1);
    const std::size_t start = value.find_first_not_of(" \t");
    value = start == std::string::npos ? std::string() : value.substr(start);
    if (value.empty()) continue;
    if (key == "model name") return value;
    if ((key == "Hardware" || key == "Processor" || key == "cpu model") && fallback.empty())
      fallback = value;
  }
  return fallback.empty() ? std::string("unknown CPU (no model name in /proc/cpuinfo)") : fallback;
}

std::string compiler_name() {
#if defined(__clang__)
  return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  return std::string("GCC ") + __VERSION__;
#else
  return "unknown compiler";
#endif
}

// Stops the compiler from deleting a timed loop whose result nobody reads.
volatile double g_sink = 0.0;
// Read through volatile so the FMA operands are not compile-time constants.
volatile double g_fma_mul = 0.9999;
volatile double g_fma_add = 1.0e-4;

// ---------------------------------------------------------------------------------------------
// FMA peak: kFmaChains independent accumulators (more than latency x throughput of any current
// core: 4 cycles x 2 pipes), each updated acc = acc * mul + add, which converges to
// add / (1 - mul) and so never overflows or goes subnormal.

constexpr int kFmaChains = 12;

// One round: each of the 12 accumulators takes one fused multiply-add.
#define BACKPROP_BENCH_FMA_ROUND(FMA)                                                        \
  acc[0] = FMA(acc[0], mul_v, add_v);                                                        \
  acc[1] = FMA(acc[1], mul_v, add_v);                                                        \
  acc[2] = FMA(acc[2], mul_v, add_v);                                                        \
  acc[3] = FMA(acc[3], mul_v, add_v);                                                        \
  acc[4] = FMA(acc[4], mul_v, add_v);                                                        \
  acc[5] = FMA(acc[5], mul_v, add_v);                                                        \
  acc[6] = FMA(acc[6], mul_v, add_v);                                                        \
  acc[7] = FMA(acc[7], mul_v, add_v);                                                        \
  acc[8] = FMA(acc[8], mul_v, add_v);                                                        \
  acc[9] = FMA(acc[9], mul_v, add_v);                                                        \
  acc[10] = FMA(acc[10], mul_v, add_v);                                                      \
  acc[11] = FMA(acc[11], mul_v, add_v);

// Each loop returns the sum of all its accumulator lanes, to be stored in g_sink.
using FmaLoop = double (*)(long rounds, double mul, double add);

#ifdef BACKPROP_BENCH_X86
__attribute__((target("avx2,fma"))) double fma_loop_avx2_f32(long rounds, double mul,
                                                             double add) {
  const __m256 mul_v = _mm256_set1_ps(float(mul));
  const __m256 add_v = _mm256_set1_ps(float(add));
  __m256 acc[kFmaChains];
  for (int i = 0; i < kFmaChains; ++i) acc[i] = _mm256_set1_ps(float(i));
  for (long r = 0; r < rounds; ++r) {
    BACKPROP_BENCH_FMA_ROUND(_mm256_fmadd_ps)
  }
  __m256 total = acc[0];
  for (int i = 1; i < kFmaChains; ++i) total = _mm256_add_ps(total, acc[i]);
  float lanes[8];
  _mm256_storeu_ps(lanes, total);
  double sum = 0.0;
  for (float lane : lanes) sum += lane;
  return sum;
}

__attribute__((target("avx2,fma"))) double fma_loop_avx2_f64(long rounds, double mul,
                                                             double add) {
  const __m256d mul_v = _mm256_set1_pd(mul);
  const __m256d add_v = _mm256_set1_pd(add);
  __m256d acc[kFmaChains];
  for (int i = 0; i < kFmaChains; ++i) acc[i] = _mm256_set1_pd(double(i));
  for (long r = 0; r < rounds; ++r) {
    BACKPROP_BENCH_FMA_ROUND(_mm256_fmadd_pd)
  }
  __m256d total = acc[0];
  for (int i = 1; i < kFmaChains; ++i) total = _mm256_add_pd(total, acc[i]);
  double lanes[4];
  _mm256_storeu_pd(lanes, total);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

__attribute__((target("avx512f"))) double fma_loop_avx512_f32(long rounds, double mul,
                                                              double add) {
  const __m512 mul_v = _mm512_set1_ps(float(mul));
  const __m512 add_v = _mm512_set1_ps(float(add));
  __m512 acc[kFmaChains];
  for (int i = 0; i < kFmaChains; ++i) acc[i] = _mm512_set1_ps(float(i));
  for (long r = 0; r < rounds; ++r) {
    BACKPROP_BENCH_FMA_ROUND(_mm512_fmadd_ps)
  }
  __m512 total = acc[0];
  for (int i = 1; i < kFmaChains; ++i) total = _mm512_add_ps(total, acc[i]);
  float lanes[16];
  _mm512_storeu_ps(lanes, total);
  double sum = 0.0;
  for (float lane : lanes) sum += lane;
  return sum;
}

__attribute__((target("avx512f"))) double fma_loop_avx512_f64(long rounds, double mul,
                                                              double add) {
  const __m512d mul_v = _mm512_set1_pd(mul);
  const __m512d add_v = _mm512_set1_pd(add);
  __m512d acc[kFmaChains];
  for (int i = 0; i < kFmaChains; ++i) acc[i] = _mm512_set1_pd(double(i));
  for (long r = 0; r < rounds; ++r) {
    BACKPROP_BENCH_FMA_ROUND(_mm512_fmadd_pd)
  }
  __m512d total = acc[0];
  for (int i = 1; i < kFmaChains; ++i) total = _mm512_add_pd(total, acc[i]);
  double lanes[8];
  _mm512_storeu_pd(lanes, total);
  double sum = 0.0;
  for (double lane : lanes) sum += lane;
  return sum;
}
#endif  // BACKPROP_BENCH_X86

// Without a vector unit we know of: separate multiply and add (ISO C++ mode does not contract
// them), counted as 2 flops like one FMA.
template <typename T>
inline T scalar_mul_add(T acc, T mul, T add) {
  return acc * mul + add;
}

template <typename T>
double fma_loop_scalar(long rounds, double mul, double add) {
  const T mul_v = T(mul);
  const T add_v = T(add);
  T acc[kFmaChains];
  for (int i = 0; i < kFmaChains; ++i) acc[i] = T(i);
  for (long r = 0; r < rounds; ++r) {
    BACKPROP_BENCH_FMA_ROUND(scalar_mul_add<T>)
  }
  double sum = 0.0;
  for (T value : acc) sum += double(value);
  return sum;
}

struct FmaPath {
  const char* name;
  int lanes_f32, lanes_f64;
  FmaLoop loop_f32, loop_f64;
};

// Every vector path this CPU can run, widest first; the scalar loop only when none is there.
std::vector<FmaPath> available_fma_paths() {
  std::vector<FmaPath> paths;
#ifdef BACKPROP_BENCH_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f"))
    paths.push_back({"avx512f", 16, 8, fma_loop_avx512_f32, fma_loop_avx512_f64});
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    paths.push_back({"avx2+fma", 8, 4, fma_loop_avx2_f32, fma_loop_avx2_f64});
#endif
  if (paths.empty())
    paths.push_back({"scalar", 1, 1, fma_loop_scalar<float>, fma_loop_scalar<double>});
  return paths;
}

// Best GFLOP/s over `runs` runs of about `target_seconds`, on `threads` threads each running
// the loop (all threads start together in one parallel region; the region's wall time counts).
double measure_fma_peak(FmaLoop loop, int lanes, int threads, double target_seconds, int runs) {
  const double flops_per_round = 2.0 * kFmaChains * lanes;
  const double mul = g_fma_mul, add = g_fma_add;
  // Calibrate on one thread: grow the round count until a run is long enough to scale from.
  long rounds = 1 << 12;
  for (;;) {
    const double start = seconds_now();
    g_sink = g_sink + loop(rounds, mul, add);
    const double elapsed = seconds_now() - start;
    if (elapsed >= 0.01 || rounds > (1L << 40)) {
      rounds = std::max(1L, long(double(rounds) * target_seconds / std::max(elapsed, 1e-9)));
      break;
    }
    rounds *= 2;
  }
  double best = 0.0;
  std::vector<double> partial(std::size_t(threads), 0.0);
  for (int run = 0; run < runs; ++run) {
    int team = 1;  // OpenMP may grant fewer threads than asked; count the ones that ran
    const double start = seconds_now();
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
    {
      partial[std::size_t(omp_get_thread_num())] = loop(rounds, mul, add);
      if (omp_get_thread_num() == 0) team = omp_get_num_threads();
    }
#else
    partial[0] = loop(rounds, mul, add);
#endif
    const double elapsed = seconds_now() - start;
    double total = 0.0;
    for (double value : partial) total += value;
    g_sink = g_sink + total;
    best = std::max(best, double(team) * double(rounds) * flops_per_round / elapsed / 1e9);
  }
  return best;
}

struct PeakTable {
  struct Row {
    std::string name;
    double f32_one = 0, f32_all = 0, f64_one = 0, f64_all = 0;
  };
  std::vector<Row> rows;
  int threads = 1;
  int runs = 1;
  double run_seconds = 0.0;
  // The denominators of every %peak and bound: the row of the vector width the GEMM's path
  // uses (avx512f, avx2+fma), the narrowest row measured for the portable path.
  Row reference;
};

PeakTable measure_peaks(int threads, bool quick) {
  PeakTable table;
  table.threads = threads;
  // Many short runs rather than a few long ones: the best of them is the one a neighbour's
  // burst on this shared machine did not hit.
  const double target = quick ? 0.01 : 0.05;
  const int runs = quick ? 4 : 6;
  table.runs = runs;
  table.run_seconds = target;
  for (const FmaPath& path : available_fma_paths()) {
    PeakTable::Row row;
    row.name = path.name;
    row.f32_one = measure_fma_peak(path.loop_f32, path.lanes_f32, 1, target, runs);
    row.f64_one = measure_fma_peak(path.loop_f64, path.lanes_f64, 1, target, runs);
    row.f32_all = row.f32_one;
    row.f64_all = row.f64_one;
    if (threads > 1) {
      row.f32_all = measure_fma_peak(path.loop_f32, path.lanes_f32, threads, target, runs);
      row.f64_all = measure_fma_peak(path.loop_f64, path.lanes_f64, threads, target, runs);
    }
    table.rows.push_back(row);
  }
  table.reference = table.rows.back();
  const backprop::Isa isa = backprop::active_isa();
  for (const PeakTable::Row& row : table.rows) {
    if ((isa == backprop::Isa::avx512 && row.name == "avx512f") ||
        (isa == backprop::Isa::avx2 && row.name == "avx2+fma"))
      table.reference = row;
  }
  return table;
}

void print_peaks(const PeakTable& table) {
  const int n = table.threads;
  std::printf("FMA peak, GFLOP/s: %d independent accumulators of the widest vector per path, "
              "best of %d runs of ~%.2f s;\n"
              "  'all' = %d thread%s, one loop each in an OpenMP parallel region\n",
              kFmaChains, table.runs, table.run_seconds, n, n == 1 ? "" : "s");
  std::printf("  %-10s %12s %12s %12s %12s\n", "isa", "f32 1 thr", "f32 all", "f64 1 thr",
              "f64 all");
  for (const PeakTable::Row& row : table.rows)
    std::printf("  %-10s %12.1f %12.1f %12.1f %12.1f\n", row.name.c_str(), row.f32_one,
                row.f32_all, row.f64_one, row.f64_all);
  const PeakTable::Row& ref = table.reference;
  const char* ref_name = ref.name.c_str();
  if (n == 1)
    std::printf("  %s peak (the denominator of every %%peak and bound below): f32 %.1f, "
                "f64 %.1f (1 thr)\n",
                ref_name, ref.f32_one, ref.f64_one);
  else
    std::printf("  %s peak (the denominator of every %%peak and bound below): f32 %.1f (1 thr), "
                "%.1f (%d thr); f64 %.1f (1 thr), %.1f (%d thr)\n",
                ref_name, ref.f32_one, ref.f32_all, n, ref.f64_one, ref.f64_all, n);
  // n threads on n free cores scale almost linearly; much less means other load or fewer cores
  // than threads, and every multi-threaded number below is then suspect.
  const double scaling = ref.f32_one > 0.0 ? ref.f32_all / ref.f32_one : 0.0;
  if (n > 1 && scaling < 0.8 * double(n))
    std::printf("  WARNING: %d threads reach only %.2fx the 1-thread peak: the machine is busy or "
                "has fewer free cores than threads; multi-threaded results are unreliable\n",
                n, scaling);
  std::printf("\n");
}

// ---------------------------------------------------------------------------------------------
// Timing

struct Timing {
  double median_seconds = 0.0;  // per call
  double fastest_seconds = 0.0;  // per call, in the fastest sample
  int samples = 0;
  long calls_per_sample = 1;
};

// Calls f once to warm up (packing buffers, thread pool) and to size a sample of at least
// min_sample seconds, then takes samples until min_total seconds and min_samples are reached.
Timing time_calls(const std::function<void()>& f, double min_total, int min_samples,
                  double min_sample) {
  double start = seconds_now();
  f();
  const double first = std::max(seconds_now() - start, 1e-9);
  Timing timing;
  timing.calls_per_sample = std::max(1L, long(std::ceil(min_sample / first)));
  std::vector<double> per_call;
  double total = 0.0;
  while ((total < min_total || int(per_call.size()) < min_samples) && per_call.size() < 100000) {
    start = seconds_now();
    for (long c = 0; c < timing.calls_per_sample; ++c) f();
    const double elapsed = seconds_now() - start;
    total += elapsed;
    per_call.push_back(elapsed / double(timing.calls_per_sample));
  }
  timing.samples = int(per_call.size());
  timing.median_seconds = median(per_call);
  timing.fastest_seconds = *std::min_element(per_call.begin(), per_call.end());
  return timing;
}

// Sleeps until a late-thread pause (call_burst.hpp) still running has ended, so that the next
// measurement starts with its splits on.
void wait_out_pause() {
  const std::int64_t left_ns = backprop::late_thread_pause_left_ns();
  if (left_ns > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(left_ns + 1'000'000));
}

// Runs `measure` (a warm-up and its timings), after any pause still running, and returns how
// many late-thread pauses began during it. A pause runs every split on one thread for up to a
// second: a row timed in one reads about one core's share of the peak, like a slow kernel,
// unless it says so (a busy 2-vCPU Zen 3 once gave two rows at 45% of its two-thread peak,
// between rows at 80-87%, before this was counted).
std::int64_t pauses_during(const std::function<void()>& measure) {
  wait_out_pause();
  const std::int64_t before = backprop::late_thread_pauses();
  measure();
  return backprop::late_thread_pauses() - before;
}

// Appended to a row whose measurement saw `pauses` of them.
std::string pause_note(std::int64_t pauses) {
  if (pauses == 0) return "";
  return "  (" + std::to_string(pauses) + " late-thread pause" + (pauses == 1 ? "" : "s") +
         ": ran on one thread part of the time)";
}

// ---------------------------------------------------------------------------------------------
// GEMM table

struct GemmShape {
  std::string label;
  bool trans_a = false, trans_b = false;
  index_t m = 0, n = 0, k = 0;
};

// The three GEMMs of every layer of a network at one batch size: forward U = X @ W, the
// backward delta D @ W^T (not for the first layer, whose input needs no delta) and the weight
// gradient X^T @ D.
void add_network_shapes(std::vector<GemmShape>& shapes, const std::string& name,
                        const std::vector<index_t>& sizes, index_t batch) {
  const std::size_t n_layers = sizes.size() - 1;
  for (std::size_t l = 0; l < n_layers; ++l)
    shapes.push_back({name + " fwd L" + std::to_string(l + 1) + " X@W", false, false, batch,
                      sizes[l + 1], sizes[l]});
  for (std::size_t l = 1; l < n_layers; ++l)
    shapes.push_back({name + " dX  L" + std::to_string(l + 1) + " D@W^T", false, true, batch,
                      sizes[l], sizes[l + 1]});
  for (std::size_t l = 0; l < n_layers; ++l)
    shapes.push_back({name + " dW  L" + std::to_string(l + 1) + " X^T@D", true, false, sizes[l],
                      sizes[l + 1], batch});
}

std::vector<GemmShape> gemm_shapes(const Options& opt) {
  std::vector<GemmShape> shapes;
  std::vector<index_t> squares = {64, 128, 256, 512, 1024};
  if (opt.quick) squares = {64, 256};
  if (opt.full) squares.push_back(2048);
  for (index_t s : squares)
    shapes.push_back({"square " + std::to_string(s), false, false, s, s, s});
  add_network_shapes(shapes, "tiny", {784, 128, 10}, 32);
  if (!opt.quick) add_network_shapes(shapes, "mnist", {784, 512, 512, 10}, 128);
  return shapes;
}

template <typename T>
const char* dtype_name() {
  return sizeof(T) == 4 ? "float32" : "float64";
}

// gemm_ref runs only up to this many multiply-adds: it is a plain triple loop.
constexpr double kRefMaxWork = 256.0 * 256.0 * 256.0;
constexpr int kSampledEntries = 64;

template <typename T>
void bench_gemm_table(const Options& opt, const PeakTable& peaks, int threads) {
  const double peak = sizeof(T) == 4 ? peaks.reference.f32_all : peaks.reference.f64_all;
  const double unit_roundoff = double(std::numeric_limits<T>::epsilon()) / 2.0;
  const double min_total = opt.quick ? 0.02 : 0.2;
  const double min_sample = opt.quick ? 0.0005 : 0.002;

  std::printf("GEMM %s: C = op(A) @ op(B), alpha 1, beta 0, inputs uniform(-1,1) from mt19937;\n"
              "  %d thread%s, micro-kernel path %s; GFLOP/s = 2mnk / median time over >= 3 "
              "timings (>= %.2f s in all);\n"
              "  %%peak = gemm GFLOP/s / measured %s FMA peak, %s, %d thread%s (%.1f GFLOP/s); "
              "shapes under %lld multiply-adds run on 1 thread, and under %lld\n"
              "  too unless called in a burst (as in these timings, every call after the first);\n"
              "  reference: 'gemm_ref' = every entry of C against backprop::gemm_ref (same dtype, "
              "also timed);\n"
              "             'f64 dot' = %d random entries of C against a double-precision dot "
              "product (gemm_ref too slow, not timed: '-');\n"
              "  tol = 2 k u max_ij sum_p |a_ip b_pj| (u = %.2e, sum over sampled entries), the "
              "worst-case rounding bound.\n",
              dtype_name<T>(), threads, threads == 1 ? "" : "s",
              backprop::isa_name(backprop::active_isa()), min_total,
              peaks.reference.name.c_str(), dtype_name<T>(),
              threads, threads == 1 ? "" : "s", peak,
              static_cast<long long>(backprop::gemm_burst_min_flops<T>()),
              static_cast<long long>(backprop::gemm_parallel_min_flops<T>()), kSampledEntries,
              unit_roundoff);
  std::printf("  %-24s %5s %5s %5s %2s %9s %9s %8s %6s %9s %9s %5s %s\n", "shape", "m", "n", "k",
              "op", "gemm GF/s", "ref GF/s", "vs ref", "%peak", "max|diff|", "tol", "check",
              "reference");

  for (const GemmShape& s : gemm_shapes(opt)) {
    const index_t m = s.m, n = s.n, k = s.k;
    // op(A) is m x k: stored k x m when transposed. op(B) is k x n: stored n x k when transposed.
    const index_t lda = s.trans_a ? m : k;
    const index_t ldb = s.trans_b ? k : n;
    const index_t ldc = n;
    std::vector<T> a(std::size_t(m * k)), b(std::size_t(k * n)), c(std::size_t(m * n));
    std::mt19937 rng(20240601u);
    std::uniform_real_distribution<double> uniform(-1.0, 1.0);
    for (T& v : a) v = T(uniform(rng));
    for (T& v : b) v = T(uniform(rng));
    auto a_at = [&](index_t i, index_t p) {
      return s.trans_a ? a[std::size_t(p * lda + i)] : a[std::size_t(i * lda + p)];
    };
    auto b_at = [&](index_t p, index_t j) {
      return s.trans_b ? b[std::size_t(j * ldb + p)] : b[std::size_t(p * ldb + j)];
    };

    const double flops = 2.0 * double(m) * double(n) * double(k);
    Timing fast;
    const std::int64_t pauses = pauses_during([&] {
      fast = time_calls(
          [&] {
            backprop::gemm<T>(s.trans_a, s.trans_b, m, n, k, T(1), a.data(), lda, b.data(), ldb,
                              T(0), c.data(), ldc);
          },
          min_total, 3, min_sample);
    });
    const double fast_gflops = flops / fast.median_seconds / 1e9;

    // Rounding scale of the sampled entries (also the double-precision check for big shapes).
    std::mt19937 pick(7u);
    std::uniform_int_distribution<index_t> pick_row(0, m - 1), pick_col(0, n - 1);
    double abs_sum_max = 0.0, sampled_diff = 0.0;
    for (int e = 0; e < kSampledEntries; ++e) {
      const index_t i = pick_row(pick), j = pick_col(pick);
      double dot = 0.0, abs_sum = 0.0;
      for (index_t p = 0; p < k; ++p) {
        const double term = double(a_at(i, p)) * double(b_at(p, j));
        dot += term;
        abs_sum += std::fabs(term);
      }
      abs_sum_max = std::max(abs_sum_max, abs_sum);
      sampled_diff = std::max(sampled_diff, std::fabs(double(c[std::size_t(i * ldc + j)]) - dot));
    }

    const bool run_ref = double(m) * double(n) * double(k) <= kRefMaxWork;
    double max_diff = sampled_diff;
    double ref_gflops = 0.0;
    if (run_ref) {
      std::vector<T> c_ref(c.size());
      const Timing ref = time_calls(
          [&] {
            backprop::gemm_ref<T>(s.trans_a, s.trans_b, m, n, k, T(1), a.data(), lda, b.data(),
                                  ldb, T(0), c_ref.data(), ldc);
          },
          min_total, 3, min_sample);
      ref_gflops = flops / ref.median_seconds / 1e9;
      max_diff = 0.0;
      for (std::size_t e = 0; e < c.size(); ++e)
        max_diff = std::max(max_diff, std::fabs(double(c[e]) - double(c_ref[e])));
    }
    const double tol = 2.0 * double(k) * unit_roundoff * abs_sum_max;
    const bool ok = max_diff <= tol;  // also false for NaN

    const char* op = s.trans_a ? "TN" : (s.trans_b ? "NT" : "NN");
    char ref_text[32], ratio_text[32];
    if (run_ref) {
      std::snprintf(ref_text, sizeof ref_text, "%9.2f", ref_gflops);
      std::snprintf(ratio_text, sizeof ratio_text, "%7.1fx", fast_gflops / ref_gflops);
    } else {
      std::snprintf(ref_text, sizeof ref_text, "%9s", "-");
      std::snprintf(ratio_text, sizeof ratio_text, "%8s", "-");
    }
    std::printf("  %-24s %5lld %5lld %5lld %2s %9.1f %s %s %5.1f%% %9.2e %9.2e %5s %s%s\n",
                s.label.c_str(), static_cast<long long>(m), static_cast<long long>(n),
                static_cast<long long>(k), op, fast_gflops, ref_text, ratio_text,
                100.0 * fast_gflops / peak, max_diff, tol, ok ? "ok" : "FAIL",
                run_ref ? "gemm_ref" : "f64 dot", pause_note(pauses).c_str());
    std::fflush(stdout);
  }
  std::printf("\n");
}

// The float32 1024^3 product against the FMA peak, measured side by side. On a shared machine
// the peak taken at the start and a product timed later can meet different neighbours: on a
// busy 2-vCPU Zen 3 the two-thread peak read 154 to 202 GFLOP/s in runs minutes apart, and the
// table's 1024^3 row 45% to 83% of it. So each round times the peak loop and then the product,
// back to back, and takes their ratio; the median of the rounds is the figure to quote. Each
// side counts its fastest of three short runs in the round, the one a burst of other work
// missed, so neither side is favoured. (The table's rows take their median sample instead.)
void bench_paired_peak(const PeakTable& peaks, int threads, bool quick) {
  const FmaPath* path = nullptr;
  const std::vector<FmaPath> paths = available_fma_paths();
  for (const FmaPath& candidate : paths)
    if (peaks.reference.name == candidate.name) path = &candidate;
  if (path == nullptr) return;
  constexpr index_t n = 1024;
  const int rounds = quick ? 3 : 7;
  const double peak_run = quick ? 0.01 : 0.05, gemm_sample = quick ? 0.01 : 0.05;
  std::vector<float> a(std::size_t(n * n)), b(std::size_t(n * n)), c(std::size_t(n * n));
  std::mt19937 rng(20240601u);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (float& v : a) v = uniform(rng);
  for (float& v : b) v = uniform(rng);
  const double flops = 2.0 * double(n) * double(n) * double(n);
  std::printf("GEMM float32 1024^3 NN against the %s FMA peak, side by side: %d rounds, each the "
              "peak loop (best of 3 runs of ~%.2f s) on %d thread%s, then the product (fastest of "
              "3 samples of >= %.2f s);\n  GFLOP/s per round, peak / gemm / %%peak:",
              path->name, rounds, peak_run, threads, threads == 1 ? "" : "s", gemm_sample);
  // Rounds set aside (marked *): a late-thread pause began in the product's timing, or the peak
  // loop reached under 80% of `threads` times the one-thread peak, so another process held a
  // core (print_peaks warns of the same) and the ratio compares two crowded runs.
  const double crowded_below =
      threads > 1 ? 0.8 * double(threads) * peaks.reference.f32_one : 0.0;
  std::vector<double> ratios, set_aside;
  int paused_rounds = 0, crowded_rounds = 0;
  for (int round = 0; round < rounds; ++round) {
    wait_out_pause();  // before the peak loop: the product follows it at once
    const double peak = measure_fma_peak(path->loop_f32, path->lanes_f32, threads, peak_run, 3);
    Timing gemm;
    const std::int64_t pauses = pauses_during([&] {
      gemm = time_calls(
          [&] {
            backprop::gemm<float>(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f,
                                  c.data(), n);
          },
          0.0, 3, gemm_sample);
    });
    const double gflops = flops / gemm.fastest_seconds / 1e9;
    const bool crowded = peak < crowded_below;
    paused_rounds += pauses > 0 ? 1 : 0;
    crowded_rounds += crowded ? 1 : 0;
    const bool aside = pauses > 0 || crowded;
    (aside ? set_aside : ratios).push_back(gflops / peak);
    std::printf(" %.1f/%.1f/%.1f%%%s", peak, gflops, 100.0 * gflops / peak, aside ? "*" : "");
    std::fflush(stdout);
  }
  // The summary leaves the rounds set aside out, unless every round was.
  const bool left_out = !ratios.empty() && !set_aside.empty();
  if (ratios.empty()) ratios = set_aside;
  std::printf("\n  1024^3 float32 at %.1f%% of the FMA peak beside it (median of %zu rounds; "
              "%.1f%% - %.1f%%)\n",
              100.0 * median(ratios), ratios.size(),
              100.0 * *std::min_element(ratios.begin(), ratios.end()),
              100.0 * *std::max_element(ratios.begin(), ratios.end()));
  if (!set_aside.empty())
    std::printf("  * %zu round%s%s: %d saw a late-thread pause (the product ran on one thread part "
                "of the time), %d had a peak loop under 80%% of %d times the one-thread peak "
                "(another process took a core)\n",
                set_aside.size(), set_aside.size() == 1 ? "" : "s",
                left_out ? " left out of the median and range" : " (every round: all kept)",
                paused_rounds, crowded_rounds, threads);
  std::printf("\n");
}

// ---------------------------------------------------------------------------------------------
// Training table

// Samples/s of `call` (which handles `rows` rows): a warm-up of at least 3 calls and a fifth of
// a timing, then kRateTimings timings of at least min_timing seconds each; `restart`, when
// given, runs before the warm-up and before each timing (outside the timed span).
constexpr int kRateTimings = 5;

struct RateStats {
  double median = 0.0, min = 0.0, max = 0.0;
  long calls_per_timing = 0;
  std::int64_t pauses = 0;  // late-thread pauses that began in the warm-up or timings
};

RateStats measure_rate(const std::function<void()>& call, index_t rows, double min_timing,
                       const std::function<void()>& restart = {}) {
  RateStats stats;
  std::vector<double> rates;
  stats.pauses = pauses_during([&] {
    if (restart) restart();
    double start = seconds_now();
    long warm_calls = 0;
    do {
      call();
      ++warm_calls;
    } while (warm_calls < 3 || seconds_now() - start < 0.2 * min_timing);
    const double per_call = std::max((seconds_now() - start) / double(warm_calls), 1e-9);
    stats.calls_per_timing = std::max(1L, long(std::ceil(min_timing / per_call)));
    for (int t = 0; t < kRateTimings; ++t) {
      if (restart) restart();
      start = seconds_now();
      for (long c = 0; c < stats.calls_per_timing; ++c) call();
      rates.push_back(double(stats.calls_per_timing) * double(rows) /
                      std::max(seconds_now() - start, 1e-12));
    }
  });
  stats.median = median(rates);
  stats.min = *std::min_element(rates.begin(), rates.end());
  stats.max = *std::max_element(rates.begin(), rates.end());
  return stats;
}


struct NetworkCase {
  std::string name;
  std::vector<index_t> sizes;
  index_t batch;
};

std::vector<NetworkCase> network_cases(const Options& opt) {
  std::vector<NetworkCase> cases = {
      {"tiny", {784, 128, 10}, 32},
      {"mnist", {784, 512, 512, 10}, 128},
      {"deep", {256, 256, 256, 256, 256, 256, 256, 256, 256, 10}, 64},
  };
  if (opt.full) cases.push_back({"wide", {1024, 4096, 4096, 1024}, 256});
  return cases;
}

std::string describe_sizes(const std::vector<index_t>& sizes) {
  // Runs of equal hidden widths collapse to (count x width), as in 256-(8x256)-10.
  std::string text = std::to_string(sizes.front());
  std::size_t i = 1;
  while (i < sizes.size()) {
    std::size_t j = i;
    while (j + 1 < sizes.size() - 1 && sizes[j + 1] == sizes[i]) ++j;
    const std::size_t run = j - i + 1;
    text += "-";
    text += run > 2 ? "(" + std::to_string(run) + "x" + std::to_string(sizes[i]) + ")"
                    : std::to_string(sizes[i]);
    if (run == 2) text += "-" + std::to_string(sizes[i]);
    i = j + 1;
  }
  return text;
}

template <typename T>
void bench_training_table(const Options& opt, const PeakTable& peaks, int threads) {
  const double peak = sizeof(T) == 4 ? peaks.reference.f32_all : peaks.reference.f64_all;
  const double min_timing = opt.quick ? 0.05 : 0.5;

  std::printf("Training step %s: backprop::train_step = forward, softmax cross-entropy (mean), "
              "backward, SGD momentum 0.9 lr 0.01;\n"
              "  ReLU hidden layers, He-uniform weights, inputs uniform(-1,1), one-hot random "
              "targets; %d thread%s;\n"
              "  median of %d timings of >= %.2f s each after a warm-up (min-max in brackets), each "
              "from the initial weights;\n"
              "  FLOPs/sample = 4 P1 + 6 (P - P1) (P weights, P1 in layer 1); bound = measured "
              "%s FMA peak, %s, %d thread%s (%.1f GFLOP/s) / FLOPs per sample.\n",
              dtype_name<T>(), threads, threads == 1 ? "" : "s", kRateTimings, min_timing,
              peaks.reference.name.c_str(), dtype_name<T>(),
              threads, threads == 1 ? "" : "s", peak);
  std::printf("  %-6s %-22s %5s %10s %9s %11s %23s %7s %11s %6s %s\n", "net", "layers", "batch",
              "params", "MFLOP/smp", "steps/timng", "samples/s [min - max]", "GF/s",
              "bound smp/s", "%bound", "loss first->last");

  for (const NetworkCase& nc : network_cases(opt)) {
    backprop::NetworkSpec<T> net;
    net.inputs = nc.sizes.front();
    for (std::size_t l = 0; l + 1 < nc.sizes.size(); ++l) {
      backprop::LayerSpec<T> layer;
      layer.fan_in = nc.sizes[l];
      layer.fan_out = nc.sizes[l + 1];
      layer.act.kind = backprop::Activation::relu;
      layer.act.alpha = T(0);
      net.layers.push_back(layer);
    }
    net.output.softmax = true;
    net.loss = backprop::Loss::cross_entropy;
    net.reduction = backprop::Reduction::mean;
    net.resolve_sources();

    const index_t n_params = net.n_params();
    const index_t batch = nc.batch;
    std::vector<T> params(std::size_t(n_params), T(0)), grads(std::size_t(n_params), T(0)),
        velocity(std::size_t(n_params), T(0));
    std::mt19937 rng(12345u);
    double weights = 0.0;
    for (std::size_t l = 0; l < net.layers.size(); ++l) {
      const backprop::LayerSpec<T>& layer = net.layers[l];
      const double limit = std::sqrt(6.0 / double(layer.fan_in));
      std::uniform_real_distribution<double> init(-limit, limit);
      T* w = params.data() + net.weight_offset(l);
      for (index_t e = 0; e < layer.fan_in * layer.fan_out; ++e) w[e] = T(init(rng));
      weights += double(layer.fan_in) * double(layer.fan_out);
    }
    const double first_layer = double(net.layers[0].fan_in) * double(net.layers[0].fan_out);
    const double flops_per_sample = 4.0 * first_layer + 6.0 * (weights - first_layer);

    const index_t n_in = net.n_inputs(), n_out = net.n_outputs();
    std::vector<T> x(std::size_t(batch * n_in)), y(std::size_t(batch * n_out), T(0));
    std::uniform_real_distribution<double> uniform(-1.0, 1.0);
    for (T& v : x) v = T(uniform(rng));
    std::uniform_int_distribution<index_t> pick_class(0, n_out - 1);
    for (index_t i = 0; i < batch; ++i) y[std::size_t(i * n_out + pick_class(rng))] = T(1);

    backprop::OptimizerSpec sgd;
    sgd.kind = backprop::OptimizerKind::sgd;
    sgd.lr = 0.01;
    sgd.momentum = 0.9;
    T* state_buffers[3] = {velocity.data(), nullptr, nullptr};
    backprop::Workspace<T> ws;
    ws.reserve(net, batch);

    long non_finite = 0;
    double first_loss = 0.0, last_loss = 0.0;
    bool have_first = false;
    auto step = [&] {
      const backprop::StepResult result = backprop::train_step<T>(
          net, params.data(), grads.data(), state_buffers, sgd, x.data(), y.data(), nullptr, batch, ws);
      if (!result.finite) ++non_finite;
      if (!have_first) {
        first_loss = result.loss;
        have_first = true;
      }
      last_loss = result.loss;
    };

    // Every timing starts from the initial weights and a zero velocity. Trained on for
    // thousands of steps, the one batch is learned so well that softmax probabilities and then
    // every gradient become subnormal numbers, which cost some CPUs a microcode assist per
    // operation: deep's later timings on an Intel Xeon ran at 18k samples/s against 44k.
    const std::vector<T> initial = params;
    auto restart = [&] {
      std::copy(initial.begin(), initial.end(), params.begin());
      std::fill(velocity.begin(), velocity.end(), T(0));
    };

    const RateStats timed = measure_rate(step, batch, min_timing, restart);
    const double rate = timed.median;
    const long steps = timed.calls_per_timing;
    const double bound = peak * 1e9 / flops_per_sample;
    char spread[64];
    std::snprintf(spread, sizeof spread, "%.0f [%.0f - %.0f]", rate, timed.min, timed.max);
    std::printf("  %-6s %-22s %5lld %10lld %9.3f %11ld %23s %7.1f %11.0f %5.1f%% %.4f -> %.4f%s\n",
                nc.name.c_str(), describe_sizes(nc.sizes).c_str(), static_cast<long long>(batch),
                static_cast<long long>(n_params), flops_per_sample / 1e6, steps, spread,
                rate * flops_per_sample / 1e9, bound, 100.0 * rate / bound, first_loss,
                last_loss, pause_note(timed.pauses).c_str());
    if (non_finite > 0)
      std::printf("  WARNING: %ld steps of %s had a non-finite loss and skipped their update; "
                  "its rate is not a valid measurement\n",
                  non_finite, nc.name.c_str());
    std::fflush(stdout);
  }
  std::printf("\n");
}

// ---------------------------------------------------------------------------------------------
// --model: one saved network

template <typename T>
std::string describe_activation(backprop::ActivationParams<T> act) {
  std::string text = backprop::activation_name(act.kind);
  if (act.kind == backprop::Activation::leaky_relu || act.kind == backprop::Activation::elu ||
      act.alpha != T(0)) {
    char alpha[48];
    std::snprintf(alpha, sizeof alpha, "(alpha %.6g)", double(act.alpha));
    text += alpha;
  }
  return text;
}

template <typename T>
void print_model(const std::string& path, const backprop::ModelFile<T>& model) {
  const backprop::NetworkSpec<T>& net = model.spec;
  const std::string output =
      net.output.softmax ? std::string("softmax") : describe_activation(net.output.act);
  std::vector<index_t> sizes = {net.n_inputs()};
  for (const backprop::LayerSpec<T>& layer : net.layers) sizes.push_back(layer.fan_out);
  std::printf("model %s: format version %lld, dtype %s, %lld parameters%s\n", path.c_str(),
              model.version, model.dtype.c_str(), static_cast<long long>(net.n_params()),
              model.has_optimizer ? " (optimizer state in the file, not used)" : "");
  std::printf("  layers %s; output %s; loss %s (reduction %s)\n", describe_sizes(sizes).c_str(),
              output.c_str(), backprop::loss_name(net.loss),
              backprop::reduction_name(net.reduction));
  std::printf("  %-5s %8s %8s  %-24s %7s  %s\n", "layer", "fan_in", "fan_out", "activation",
              "dropout", "reads (x: the input, Lj: layer j)");
  for (std::size_t l = 0; l < net.layers.size(); ++l) {
    const backprop::LayerSpec<T>& layer = net.layers[l];
    const bool last = l + 1 == net.layers.size();
    std::string reads;
    for (int s : layer.sources)
      reads += (reads.empty() ? "" : ", ") + (s == 0 ? std::string("x") : "L" + std::to_string(s));
    std::printf("  %-5zu %8lld %8lld  %-24s %7.3g  %s\n", l + 1,
                static_cast<long long>(layer.fan_in), static_cast<long long>(layer.fan_out),
                last ? (output + " (output)").c_str() : describe_activation(layer.act).c_str(),
                layer.dropout, reads.c_str());
  }
}

// The forward pass in plain loops, in double, with the activations' _ref twins: what the
// checksum's outputs are compared against.
template <typename T>
std::vector<double> reference_forward(const backprop::NetworkSpec<T>& net,
                                      const std::vector<T>& params, const std::vector<T>& x,
                                      index_t rows) {
  std::vector<std::vector<double>> outputs(net.layers.size() + 1);  // [0]: the input
  outputs[0].assign(x.begin(), x.end());
  for (std::size_t l = 0; l < net.layers.size(); ++l) {
    const backprop::LayerSpec<T>& layer = net.layers[l];
    const T* w = params.data() + net.weight_offset(l);
    const T* b = params.data() + net.bias_offset(l);
    std::vector<double> u(std::size_t(rows * layer.fan_out));
    for (index_t i = 0; i < rows; ++i)
      for (index_t o = 0; o < layer.fan_out; ++o) {
        double sum = double(b[o]);
        index_t row = 0;  // the row of W that source s starts at
        for (int s : layer.sources) {
          const index_t width = net.source_width(s);
          const std::vector<double>& in = outputs[std::size_t(s)];
          for (index_t k = 0; k < width; ++k)
            sum += in[std::size_t(i * width + k)] * double(w[(row + k) * layer.fan_out + o]);
          row += width;
        }
        u[std::size_t(i * layer.fan_out + o)] = sum;
      }
    std::vector<double>& out = outputs[l + 1];
    out.resize(u.size());
    const bool output_layer = l + 1 == net.layers.size();
    if (output_layer && net.output.softmax) {
      backprop::softmax_forward_ref<double>(out.data(), u.data(), rows, layer.fan_out);
    } else {
      const auto act = output_layer ? net.output.act : layer.act;
      backprop::activation_forward_ref<double>(out.data(), u.data(), index_t(u.size()),
                                               {act.kind, double(act.alpha)});
    }
  }
  return outputs.back();
}

template <typename T>
int bench_model(const Options& opt, const std::string& path, const backprop::ModelFile<T>& model,
                int threads) {
  const backprop::NetworkSpec<T>& net = model.spec;
  const index_t rows = opt.batch;
  const index_t n_in = net.n_inputs(), n_out = net.n_outputs();
  print_model(path, model);

  // The deterministic input, computed in double and rounded once to T.
  std::vector<T> x(std::size_t(rows * n_in));
  for (index_t i = 0; i < rows; ++i)
    for (index_t j = 0; j < n_in; ++j)
      x[std::size_t(i * n_in + j)] = T(std::sin(0.37 * double(i) + 0.11 * double(j)));

  backprop::Workspace<T> ws;
  ws.reserve(net, rows);
  const T* y_hat = backprop::mlp_forward<T>(net, model.params.data(), x.data(), rows, ws);
  double checksum = 0.0, weighted = 0.0;
  for (index_t e = 0; e < rows * n_out; ++e) {
    checksum += double(y_hat[e]);
    weighted += double(y_hat[e]) * double(1 + e % 7);
  }
  std::printf("\nforward: backprop::mlp_forward (inference) on x[i][j] = sin(0.37 i + 0.11 j), "
              "computed in double and cast to %s, %lld rows x %lld inputs;\n"
              "  checksum = sum of all outputs, weighted = sum of y[i][k] * (1 + (i * %lld + k) "
              "%% 7), both summed in double in row-major order\n",
              model.dtype.c_str(), static_cast<long long>(rows), static_cast<long long>(n_in),
              static_cast<long long>(n_out));
  std::printf("forward checksum: %.17g\n", checksum);
  std::printf("forward weighted checksum: %.17g\n", weighted);
  const std::vector<double> reference = reference_forward(net, model.params, x, rows);
  double max_diff = 0.0, max_ref = 0.0;
  for (std::size_t e = 0; e < reference.size(); ++e) {
    const double diff = std::fabs(double(y_hat[e]) - reference[e]);
    max_diff = diff > max_diff || std::isnan(diff) ? diff : max_diff;
    max_ref = std::max(max_ref, std::fabs(reference[e]));
  }
  std::printf("  against a double-precision reference (plain loops, activation_forward_ref): "
              "max |diff| %.3e, max |output| %.3e\n",
              max_diff, max_ref);
  std::fflush(stdout);

  const double min_timing = opt.quick ? 0.05 : 0.5;
  std::printf("\ntimings: %d thread%s, batch %lld, median of %d timings of >= %.2f s each after a "
              "warm-up (min-max in brackets)\n",
              threads, threads == 1 ? "" : "s", static_cast<long long>(rows), kRateTimings,
              min_timing);
  const RateStats inference = measure_rate(
      [&] { backprop::mlp_forward<T>(net, model.params.data(), x.data(), rows, ws); }, rows,
      min_timing);
  std::printf("  %-9s %-48s %10.0f samples/s [%.0f - %.0f], %ld calls per timing%s\n",
              "inference", "backprop::mlp_forward", inference.median, inference.min,
              inference.max, inference.calls_per_timing, pause_note(inference.pauses).c_str());
  std::fflush(stdout);

  // Training changes the weights: it runs on a copy, after the checksum.
  std::vector<T> params = model.params;
  std::vector<T> grads(params.size(), T(0));
  backprop::OptimizerSpec sgd;
  sgd.kind = backprop::OptimizerKind::sgd;
  sgd.lr = 0.01;
  sgd.momentum = 0.9;
  std::vector<std::vector<T>> state(std::size_t(backprop::optimizer_state_count(sgd)),
                                    std::vector<T>(params.size(), T(0)));
  std::vector<T*> state_buffers;
  for (std::vector<T>& buffer : state) state_buffers.push_back(buffer.data());
  state_buffers.push_back(nullptr);
  const bool one_hot = net.loss == backprop::Loss::cross_entropy;
  std::vector<T> y(std::size_t(rows * n_out), one_hot ? T(0) : T(0.5));
  if (one_hot)
    for (index_t i = 0; i < rows; ++i) y[std::size_t(i * n_out + i % n_out)] = T(1);

  long non_finite = 0;
  double first_loss = 0.0, last_loss = 0.0;
  bool have_first = false;
  const RateStats training = measure_rate(
      [&] {
        const backprop::StepResult result =
            backprop::train_step<T>(net, params.data(), grads.data(), state_buffers.data(), sgd,
                                    x.data(), y.data(), nullptr, rows, ws);
        sgd.step += 1;  // a new dropout mask each step, as in training
        if (!result.finite) ++non_finite;
        if (!have_first) first_loss = result.loss;
        have_first = true;
        last_loss = result.loss;
      },
      rows, min_timing);
  std::printf("  %-9s %-48s %10.0f samples/s [%.0f - %.0f], %ld calls per timing%s\n"
              "            targets %s; loss %s (%s) %.6g -> %.6g over %ld steps\n",
              "training", "backprop::train_step, SGD momentum 0.9 lr 0.01", training.median,
              training.min, training.max, training.calls_per_timing,
              pause_note(training.pauses).c_str(),
              one_hot ? "one-hot of class i % n_outputs" : "0.5 everywhere",
              backprop::loss_name(net.loss), backprop::reduction_name(net.reduction), first_loss,
              last_loss, long(sgd.step));
  if (non_finite > 0)
    std::printf("  WARNING: %ld training steps had a non-finite loss and skipped their update\n",
                non_finite);
  return 0;
}

// The message of a failed load as one line on stderr.
void report_load_error(const std::string& message) {
  std::string line = message;
  for (char& c : line)
    if (c == '\n' || c == '\r') c = ' ';
  std::fprintf(stderr, "backprop-bench: %s\n", line.c_str());
}

int run_model(const Options& opt, int threads) {
  std::string dtype;
  backprop::ModelFile<float> model32;
  backprop::ModelFile<double> model64;
  try {
    dtype = backprop::model_file_dtype(opt.model);
    if (dtype == "float32")
      model32 = backprop::load_model_file<float>(opt.model);
    else
      model64 = backprop::load_model_file<double>(opt.model);
  } catch (const std::exception& error) {
    report_load_error(error.what());
    return 2;
  }
  try {
    return dtype == "float32" ? bench_model<float>(opt, opt.model, model32, threads)
                              : bench_model<double>(opt, opt.model, model64, threads);
  } catch (const std::exception& error) {  // e.g. out of memory for the workspaces
    std::fprintf(stderr, "backprop-bench: the benchmark of %s failed: %s\n", opt.model.c_str(),
                 error.what());
    return 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  const Options opt = parse_options(argc, argv);
  const double start = seconds_now();

  if (opt.threads > 0) backprop::set_num_threads(opt.threads);
  if (!opt.isa.empty()) {
    backprop::Isa isa = backprop::Isa::generic;
    for (backprop::Isa each : backprop::kAllIsas)
      if (opt.isa == backprop::isa_name(each)) isa = each;
    try {
      backprop::force_isa(isa);
    } catch (const std::exception& error) {
      std::fprintf(stderr, "backprop-bench: --isa %s: %s\n", opt.isa.c_str(), error.what());
      return 2;
    }
  }
  const int threads = backprop::get_num_threads();

  if (!opt.model.empty())
    std::printf("backprop-bench --model %s --batch %lld%s\n", opt.model.c_str(),
                static_cast<long long>(opt.batch), opt.quick ? " --quick" : "");
  else
    std::printf("backprop-bench%s%s\n", opt.quick ? " --quick" : "", opt.full ? " --full" : "");
  std::printf("machine: %s | %u logical CPUs | threads %d (backprop::get_num_threads) | "
              "OpenMP %s | GEMM path %s (%s) | %s\n\n",
              cpu_model_name().c_str(), std::thread::hardware_concurrency(), threads,
              backprop::openmp_enabled() ? "on" : "off",
              backprop::isa_name(backprop::active_isa()),
              opt.isa.empty() ? "automatic" : "forced by --isa", compiler_name().c_str());
  std::fflush(stdout);

  if (!opt.model.empty()) {
    const int status = run_model(opt, threads);
    if (status == 0) std::printf("\ntotal time %.1f s\n", seconds_now() - start);
    return status;
  }

  const PeakTable peaks = measure_peaks(threads, opt.quick);
  print_peaks(peaks);
  std::fflush(stdout);

  if (opt.dtype != DtypeChoice::f64) bench_gemm_table<float>(opt, peaks, threads);
  if (opt.dtype != DtypeChoice::f64) bench_paired_peak(peaks, threads, opt.quick);
  if (opt.dtype != DtypeChoice::f32) bench_gemm_table<double>(opt, peaks, threads);

  if (opt.dtype == DtypeChoice::f64)
    bench_training_table<double>(opt, peaks, threads);
  else
    bench_training_table<float>(opt, peaks, threads);

  std::printf("total time %.1f s\n", seconds_now() - start);
  return 0;
}
