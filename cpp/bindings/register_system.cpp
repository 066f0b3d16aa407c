// Binds threads, the GEMM instruction-set choice and the name tables shared with Python.
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "backprop/activations.hpp"
#include "backprop/call_burst.hpp"
#include "backprop/float_mode.hpp"
#include "backprop/gemm.hpp"
#include "backprop/gemm_micro_kernel.hpp"
#include "backprop/losses.hpp"
#include "backprop/mlp.hpp"
#include "backprop/stealing_shares.hpp"
#include "backprop/threads.hpp"
#include "backprop/train.hpp"
#include "register.hpp"
#include "validate.hpp"

namespace backprop::bindings {

namespace {

void check_stealing_shares(index_t count, index_t max_count, int parts) {
  if (count < 0 || count > max_count)
    fail_value("count must be in [0, " + std::to_string(max_count) + "]; got " +
               std::to_string(count));
  if (parts < 1 || parts > StealingShares::kMaxParts)
    fail_value("parts must be in [1, " + std::to_string(StealingShares::kMaxParts) + "]; got " +
               std::to_string(parts));
}

}  // namespace

void register_system(py::module_& m) {
  m.def("set_num_threads", &set_num_threads, py::arg("n"));
  m.def("get_num_threads", &get_num_threads);
  m.def("openmp_enabled", &openmp_enabled);
  m.def("in_forked_child", &in_forked_child);
  m.def("set_flush_subnormals", &set_flush_subnormals, py::arg("on"));
  m.def("flush_subnormals", &flush_subnormals);
  m.def("team_float_modes", &team_float_modes, py::arg("threads"));
  m.def("call_burst_settings", [] {
    const CallBurstSettings now = call_burst_settings();
    return py::make_tuple(now.window_ns, now.late_start_ns, now.pause_ns);
  });
  m.def(
      "set_call_burst_settings",
      [](std::int64_t window_ns, std::int64_t late_start_ns, std::int64_t pause_ns) {
        set_call_burst_settings({window_ns, late_start_ns, pause_ns});
      },
      py::arg("window_ns"), py::arg("late_start_ns"), py::arg("pause_ns"));
  m.def("late_thread_pauses", &late_thread_pauses);
  m.def("late_thread_pause_left_ns", &late_thread_pause_left_ns);
  m.def(
      "gemm_thread_count",
      [](index_t m, index_t n, index_t k, bool double_precision) {
        if (m < 0 || n < 0 || k < 0) fail_value("m, n and k must be non-negative");
        return double_precision ? gemm_thread_count<double>(m, n, k)
                                : gemm_thread_count<float>(m, n, k);
      },
      py::arg("m"), py::arg("n"), py::arg("k"), py::arg("double_precision"));
  m.def(
      "gemm_k_split_applies",
      [](index_t m, index_t k, int threads, index_t min_k_blocks) {
        if (m < 0 || k < 0) fail_value("m and k must be non-negative");
        if (min_k_blocks < 1) fail_value("min_k_blocks must be at least 1");
        return gemm_k_split_applies(m, k, threads, min_k_blocks);
      },
      py::arg("m"), py::arg("k"), py::arg("threads"), py::arg("min_k_blocks") = 1);
  m.def(
      "gemm_k_block",
      [](index_t k, index_t min_blocks) {
        if (k < 0) fail_value("k must be non-negative");
        if (min_blocks < 1) fail_value("min_blocks must be at least 1");
        return gemm_k_block(k, min_blocks);
      },
      py::arg("k"), py::arg("min_blocks") = 1);
  m.def("gemm_k_split_count", &gemm_k_split_count);
  m.def("gemm_stolen_pairs_count", &gemm_stolen_pairs_count);
  m.def(
      "stealing_shares_taken_in_turns",
      [](index_t count, int parts, const std::vector<int>& takers) {
        check_stealing_shares(count, index_t(1) << 31, parts);
        for (int part : takers)
          if (part < 0 || part >= parts)
            fail_value("takers must be parts in [0, parts); got " + std::to_string(part));
        return stealing_shares_taken_in_turns(count, parts, takers);
      },
      py::arg("count"), py::arg("parts"), py::arg("takers"));
  m.def(
      "stealing_shares_race",
      [](index_t count, int parts, std::int64_t wait_ns) {
        check_stealing_shares(count, index_t(1) << 20, parts);
        if (wait_ns < 0 || wait_ns > 10'000'000'000)
          fail_value("wait_ns must be in [0, 10^10]; got " + std::to_string(wait_ns));
        py::gil_scoped_release release;
        return stealing_shares_race(count, parts, wait_ns);
      },
      py::arg("count"), py::arg("parts"), py::arg("wait_ns"));
  m.def("mlp_backward_region_count", &mlp_backward_region_count);
  m.def("mlp_thread_gradient_count", &mlp_thread_gradient_count);
  m.def("train_step_checked_in_backward_count", &train_step_checked_in_backward_count);
  m.def(
      "gemm_burst_min_flops",
      [](bool double_precision) {
        return double_precision ? gemm_burst_min_flops<double>() : gemm_burst_min_flops<float>();
      },
      py::arg("double_precision"));

  m.def("gemm_isa", [] { return std::string(isa_name(active_isa())); });
  m.def("available_isas", [] {
    std::vector<std::string> names;
    for (Isa isa : kAllIsas)
      if (isa_supported(isa)) names.emplace_back(isa_name(isa));
    return names;
  });
  m.def(
      "set_gemm_isa",
      [](const std::string& name) {
        if (name == "auto") return reset_isa();
        for (Isa isa : kAllIsas)
          if (name == isa_name(isa)) return force_isa(isa);
        fail_value("isa must be 'auto', 'generic', 'avx2' or 'avx512', got '" + name + "'");
      },
      py::arg("name"));

  py::dict activations;
  activations["identity"] = int(Activation::identity);
  activations["sigmoid"] = int(Activation::sigmoid);
  activations["tanh"] = int(Activation::tanh);
  activations["relu"] = int(Activation::relu);
  activations["leaky_relu"] = int(Activation::leaky_relu);
  activations["elu"] = int(Activation::elu);
  activations["softplus"] = int(Activation::softplus);
  activations["gelu"] = int(Activation::gelu);
  m.attr("ACTIVATIONS") = activations;

  py::dict defaults;
  for (auto item : activations) {
    const auto kind = static_cast<Activation>(item.second.cast<int>());
    defaults[item.first] = default_activation_alpha<double>(kind);
  }
  m.attr("ACTIVATION_DEFAULT_ALPHA") = defaults;

  py::dict losses;
  losses["mse"] = int(Loss::mse);
  losses["binary_cross_entropy"] = int(Loss::binary_cross_entropy);
  losses["cross_entropy"] = int(Loss::cross_entropy);
  m.attr("LOSSES") = losses;

  py::dict reductions;
  reductions["mean"] = int(Reduction::mean);
  reductions["sum"] = int(Reduction::sum);
  m.attr("REDUCTIONS") = reductions;
}

}  // namespace backprop::bindings
