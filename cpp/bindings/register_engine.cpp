// Binds the native network engine: one object per network, holding its spec and workspace.
#include <pybind11/stl.h>

#include <cstdint>
#include <mutex>
#include <utility>
#include <string>
#include <vector>

#include "backprop/checks.hpp"
#include "backprop/jacobian.hpp"
#include "backprop/train.hpp"
#include "optimizer_state.hpp"
#include "register.hpp"
#include "validate.hpp"

namespace backprop::bindings {
namespace {

// The network's shape and the workspace reused across calls. Calls on one engine are
// serialised: its workspace is shared state.
template <typename T>
class Engine {
 public:
  Engine(index_t inputs, const std::vector<index_t>& fan_ins, const std::vector<index_t>& fan_outs,
         const std::vector<std::vector<int>>& sources, const std::vector<int>& hidden_kinds,
         const std::vector<double>& hidden_alphas, const std::vector<double>& dropout,
         std::uint64_t dropout_seed, bool softmax_output, int output_kind, double output_alpha,
         int loss, int reduction) {
    const std::size_t n_layers = fan_outs.size();
    if (n_layers < 1) fail_value("a network needs at least one layer");
    if (inputs < 1) fail_value("the network needs at least one input");
    if (fan_ins.size() != n_layers || sources.size() != n_layers)
      fail_value("need a fan_in and a source list per layer");
    if (hidden_kinds.size() != n_layers - 1 || hidden_alphas.size() != n_layers - 1 ||
        dropout.size() != n_layers - 1)
      fail_value("need one activation and one dropout rate per hidden layer");
    spec_.dropout_seed = dropout_seed;
    spec_.inputs = inputs;
    for (std::size_t l = 0; l < n_layers; ++l) {
      if (fan_ins[l] < 1 || fan_outs[l] < 1) fail_value("every layer size must be at least 1");
      LayerSpec<T> layer;
      layer.fan_in = fan_ins[l];
      layer.fan_out = fan_outs[l];
      layer.sources = sources[l];
      if (l + 1 < n_layers) {
        layer.act = {to_activation(hidden_kinds[l]), T(hidden_alphas[l])};
        if (!(dropout[l] >= 0.0 && dropout[l] < 1.0)) fail_value("dropout must be in [0, 1)");
        layer.dropout = dropout[l];
      }
      spec_.layers.push_back(layer);
    }
    try {
      spec_.resolve_sources();
    } catch (const std::invalid_argument& error) {
      fail_value(error.what());
    }
    spec_.output.softmax = softmax_output;
    spec_.output.act = {softmax_output ? Activation::identity : to_activation(output_kind),
                        T(output_alpha)};
    if (loss < 0 || loss > int(Loss::cross_entropy)) fail_value("unknown loss code");
    if (reduction != 0 && reduction != 1) fail_value("reduction must be 'mean' or 'sum'");
    spec_.loss = static_cast<Loss>(loss);
    spec_.reduction = static_cast<Reduction>(reduction);
    if (spec_.loss == Loss::cross_entropy && !softmax_output)
      fail_value("loss 'cross_entropy' needs output 'softmax'");
    if (spec_.loss == Loss::binary_cross_entropy &&
        (softmax_output || spec_.output.act.kind != Activation::sigmoid))
      fail_value("loss 'binary_cross_entropy' needs output 'sigmoid'");
  }

  index_t n_params() const { return spec_.n_params(); }

  void forward(const py::array& params, const py::array& x, const py::array& out) {
    const T* p = check_params(params);
    const index_t m = check_rows(x, "X", spec_.n_inputs());
    T* o = output_ptr<T>(out, "out", 2);
    require_shape(out, "out", {m, spec_.n_outputs()});
    require_no_overlap(out, "out", x, "X");
    require_no_overlap(out, "out", params, "params");
    const T* px = static_cast<const T*>(x.data());
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mutex_);
    const T* y_hat = mlp_forward(spec_, p, px, m, workspace_);
    std::copy(y_hat, y_hat + m * spec_.n_outputs(), o);
  }

  double loss(const py::array& params, const py::array& x, const py::array& y,
              const py::object& sample_weight, index_t dropout_step) {
    const T* p = check_params(params);
    const index_t m = check_rows(x, "X", spec_.n_inputs());
    const T* py_ = check_targets(y, m);
    const T* pw = check_weights(sample_weight, m);
    const T* px = static_cast<const T*>(x.data());
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mutex_);
    const T* y_hat = mlp_forward(spec_, p, px, m, workspace_, dropout_step);
    return loss_forward(spec_.loss, spec_.reduction, workspace_.pre.back().data(), y_hat, py_, pw,
                        m, spec_.n_outputs(), spec_.output);
  }

  double loss_and_grad(const py::array& params, const py::array& x, const py::array& y,
                       const py::array& grads, const py::object& sample_weight,
                       index_t dropout_step) {
    return loss_and_grad_with_bound(params, x, y, grads, sample_weight, dropout_step, nullptr,
                                    nullptr);
  }

  // loss_and_grad, returning the bound on the gradient's magnitudes that a training step proves
  // its update with (mlp_gradient_bound), for the tests.
  double gradient_bound(const py::array& params, const py::array& x, const py::array& y,
                        const py::array& grads, const py::object& sample_weight,
                        index_t dropout_step) {
    double bound = 0.0;
    loss_and_grad_with_bound(params, x, y, grads, sample_weight, dropout_step, &bound, nullptr);
    return bound;
  }

  // The same with the bound an early update is proven with, before the backward pass
  // (mlp_gradient_bound_before_backward), for weights of magnitude at most weight_bound.
  double gradient_bound_before_backward(const py::array& params, const py::array& x,
                                        const py::array& y, const py::array& grads,
                                        double weight_bound, const py::object& sample_weight,
                                        index_t dropout_step) {
    double bound = 0.0;
    loss_and_grad_with_bound(params, x, y, grads, sample_weight, dropout_step, &bound,
                             &weight_bound);
    return bound;
  }

  double loss_and_grad_with_bound(const py::array& params, const py::array& x,
                                  const py::array& y, const py::array& grads,
                                  const py::object& sample_weight, index_t dropout_step,
                                  double* bound, const double* weight_bound) {
    const T* p = check_params(params);
    const index_t m = check_rows(x, "X", spec_.n_inputs());
    const T* py_ = check_targets(y, m);
    const T* pw = check_weights(sample_weight, m);
    T* g = check_grads(grads, params, x, y);
    const T* px = static_cast<const T*>(x.data());
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mutex_);
    const T* y_hat = mlp_forward(spec_, p, px, m, workspace_, dropout_step);
    const double value = loss_forward(spec_.loss, spec_.reduction, workspace_.pre.back().data(),
                                      y_hat, py_, pw, m, spec_.n_outputs(), spec_.output);
    mlp_output_delta(spec_, py_, pw, m, workspace_);
    if (weight_bound != nullptr)
      *bound = mlp_gradient_bound_before_backward(spec_, px, m, workspace_, *weight_bound);
    mlp_backprop(spec_, p, px, m, workspace_, g);
    if (bound != nullptr && weight_bound == nullptr)
      *bound = mlp_gradient_bound(spec_, px, m, workspace_);
    return value;
  }

  py::dict train_step(const py::array& params, const py::array& grads, const py::list& state,
                      const OptimizerSpec& opt, const py::array& x, const py::array& y,
                      const py::object& sample_weight) {
    T* p = check_writable_params(params);
    const index_t m = check_rows(x, "X", spec_.n_inputs());
    const T* py_ = check_targets(y, m);
    const T* pw = check_weights(sample_weight, m);
    T* g = check_grads(grads, params, x, y);
    std::vector<T*> s = state_pointers<T>(state, opt, params, {{&grads, "grads"}, {&x, "X"}, {&y, "y"}});
    const T* px = static_cast<const T*>(x.data());
    StepResult result;
    {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mutex_);
      result = backprop::train_step(spec_, p, g, s.data(), opt, px, py_, pw, m, workspace_);
    }
    return step_dict(result);
  }

  // train_step on a batch in the form a training loop usually passes, with the checks and the
  // one-hot targets done here rather than in Python (whose conversions cost a tenth of a small
  // network's step): X of this dtype, C-contiguous, (m, n_inputs) with m >= 1 and every value
  // finite; y the m int64 class ids of a cross-entropy network, each an output. For anything
  // else, bad values included, it returns None with the weights and optimizer state untouched,
  // and the caller takes the general path, which converts what it can and raises with the full
  // message.
  //
  // X is scanned for NaN and Inf only after a step that came out not finite. A non-finite X
  // always makes it so. A non-finite x makes every first-layer pre-activation of its row NaN or
  // Inf. If such a value reaches the logits, the loss is NaN; else dropout or an activation's
  // finite end absorbed it, where the derivative is exactly 0, so the deltas behind it are 0 or
  // NaN, and X^T D holds x * 0 = NaN in x's column. Every rule carries a NaN gradient into a
  // new weight or state value (clipping keeps it), which the update refuses. A scan up front
  // ran on the calling thread while the others waited: 3% of tiny's per-call samples.
  py::object train_step_on_class_ids(const py::array& params, const py::array& grads,
                                     const py::list& state, const OptimizerSpec& opt,
                                     const py::object& x_given, const py::object& y_given) {
    if (spec_.loss != Loss::cross_entropy || !py::isinstance<py::array>(x_given) ||
        !py::isinstance<py::array>(y_given))
      return py::none();
    const auto x = py::reinterpret_borrow<py::array>(x_given);
    const auto y = py::reinterpret_borrow<py::array>(y_given);
    const index_t n_in = spec_.n_inputs(), n_out = spec_.n_outputs();
    if (!x.dtype().is(py::dtype::of<T>()) || x.ndim() != 2 || !(x.flags() & py::array::c_style) ||
        x.shape(1) != n_in || x.shape(0) < 1)
      return py::none();
    const index_t m = x.shape(0);
    if (!y.dtype().is(py::dtype::of<std::int64_t>()) || y.ndim() != 1 ||
        !(y.flags() & py::array::c_style) || y.shape(0) != m)
      return py::none();
    T* p = check_writable_params(params);
    T* g = check_grads(grads, params, x, y);
    std::vector<T*> s = state_pointers<T>(state, opt, params, {{&grads, "grads"}, {&x, "X"}, {&y, "y"}});
    const T* px = static_cast<const T*>(x.data());
    const auto* ids = static_cast<const std::int64_t*>(y.data());
    bool valid = false;
    StepResult result;
    {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mutex_);
      class_targets_.resize(std::size_t(m * n_out));
      // one_hot reads each id once: another Python thread may be writing y meanwhile.
      valid = one_hot(class_targets_.data(), ids, m, n_out);
      if (valid) {
        const T* no_weights = nullptr;
        result = backprop::train_step(spec_, p, g, s.data(), opt, px, class_targets_.data(),
                                      no_weights, m, workspace_);
        valid = result.finite || all_finite(px, m * n_in);
      }
    }
    if (!valid) return py::none();
    return step_dict(result);
  }

  py::dict train_epoch(const py::array& params, const py::array& grads, const py::list& state,
                       const OptimizerSpec& opt, const py::array& x, const py::array& y,
                       const py::array& order, index_t batch_size,
                       const py::object& sample_weight) {
    T* p = check_writable_params(params);
    const index_t n_rows = check_rows(x, "X", spec_.n_inputs());
    const T* py_ = check_targets(y, n_rows);
    const T* pw = check_weights(sample_weight, n_rows);
    T* g = check_grads(grads, params, x, y);
    std::vector<T*> s = state_pointers<T>(state, opt, params, {{&grads, "grads"}, {&x, "X"}, {&y, "y"}});
    if (batch_size < 1) fail_value("batch_size must be at least 1, got " + std::to_string(batch_size));
    const std::int64_t* idx = index_vector(order, "order", "row indices");
    const index_t n_order = order.shape(0);
    for (index_t i = 0; i < n_order; ++i)
      if (idx[i] < 0 || idx[i] >= n_rows)
        fail_value("order holds row " + std::to_string(idx[i]) + ", outside 0.." +
                   std::to_string(n_rows - 1));
    const T* px = static_cast<const T*>(x.data());
    EpochResult result;
    {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mutex_);
      result = backprop::train_epoch(spec_, p, g, s.data(), opt, px, py_, pw, n_rows, idx,
                                     n_order, batch_size, workspace_);
    }
    py::dict out;
    out["loss_sum"] = result.loss_sum;
    out["correct"] = result.correct;
    out["rows"] = result.rows;
    out["batches"] = result.batches;
    out["failed_batch"] = result.failed_batch;
    out["proven_updates"] = result.proven_updates;
    out["proven_unscanned"] = result.proven_unscanned;
    out["early_updates"] = result.early_updates;
    out["bounds"] = py::make_tuple(result.bounds[0], result.bounds[1], result.bounds[2]);
    out["input_bound"] = result.input_bound;
    return out;
  }

  // Adds J^T J and J^T e of the squared-error loss into jtj and jte; returns 1/2 sum e^2.
  double gauss_newton(const py::array& params, const py::array& x, const py::array& y,
                      const py::array& jtj, const py::array& jte) {
    const T* p = check_params(params);
    const index_t m = check_rows(x, "X", spec_.n_inputs());
    const T* py_ = check_targets(y, m);
    const index_t n = spec_.n_params();
    T* a = output_ptr<T>(jtj, "jtj", 2);
    require_shape(jtj, "jtj", {n, n});
    T* b = output_ptr<T>(jte, "jte", 1);
    require_shape(jte, "jte", {n});
    for (const auto& [array, name] : {std::pair<const py::array*, const char*>{&params, "params"},
                                      {&x, "X"}, {&y, "y"}, {&jte, "jte"}})
      require_no_overlap(jtj, "jtj", *array, name);
    for (const auto& [array, name] : {std::pair<const py::array*, const char*>{&params, "params"},
                                      {&x, "X"}, {&y, "y"}})
      require_no_overlap(jte, "jte", *array, name);
    const T* px = static_cast<const T*>(x.data());
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mutex_);
    return gauss_newton_accumulate(spec_, p, px, py_, m, workspace_, jacobian_, a, b);
  }

  // Each workspace buffer's address modulo 64 (0: it starts on a cache line), for the tests.
  std::vector<index_t> workspace_line_offsets() {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<index_t> offsets;
    auto add = [&offsets](const CacheLineVector<T>& buffer) {
      if (!buffer.empty())
        offsets.push_back(index_t(reinterpret_cast<std::uintptr_t>(buffer.data()) % 64));
    };
    for (const auto* group : {&workspace_.pre, &workspace_.post, &workspace_.grad_post,
                              &workspace_.dropped})
      for (const auto& buffer : *group) add(buffer);
    for (const auto* buffer : {&workspace_.batch_x, &workspace_.batch_y, &workspace_.batch_w})
      add(*buffer);
    return offsets;
  }

 private:
  static Activation to_activation(int kind) {
    if (kind < 0 || kind > int(Activation::gelu)) fail_value("unknown activation code");
    return static_cast<Activation>(kind);
  }

  const T* check_params(const py::array& params) const {
    const T* p = input_ptr<T>(params, "params", 1);
    require_shape(params, "params", {spec_.n_params()});
    return p;
  }

  T* check_writable_params(const py::array& params) const {
    check_params(params);
    return output_ptr<T>(params, "params", 1);
  }

  index_t check_rows(const py::array& x, const char* name, index_t width) const {
    input_ptr<T>(x, name, 2);
    if (x.shape(1) != width)
      fail_value(std::string(name) + " must have " + std::to_string(width) +
                 " columns (the network's inputs), got shape " + shape_string(x));
    if (x.shape(0) < 1) fail_value(std::string(name) + " must have at least one row");
    return x.shape(0);
  }

  const T* check_targets(const py::array& y, index_t m) const {
    const T* p = input_ptr<T>(y, "y", 2);
    require_shape(y, "y", {m, spec_.n_outputs()});
    return p;
  }

  // nullptr for None, else a (m,) array of this dtype.
  const T* check_weights(const py::object& weights, index_t m) const {
    if (weights.is_none()) return nullptr;
    if (!py::isinstance<py::array>(weights)) fail_type("sample_weight must be a numpy array or None");
    const py::array w = py::reinterpret_borrow<py::array>(weights);
    const T* p = input_ptr<T>(w, "sample_weight", 1);
    require_shape(w, "sample_weight", {m});
    return p;
  }

  static py::dict step_dict(const StepResult& result) {
    py::dict out;
    out["loss"] = result.loss;
    out["correct"] = result.correct;
    out["finite"] = result.finite;
    return out;
  }

  T* check_grads(const py::array& grads, const py::array& params, const py::array& x,
                 const py::array& y) const {
    T* g = output_ptr<T>(grads, "grads", 1);
    require_shape(grads, "grads", {spec_.n_params()});
    require_no_overlap(grads, "grads", params, "params");
    require_no_overlap(grads, "grads", x, "X");
    require_no_overlap(grads, "grads", y, "y");
    return g;
  }

  NetworkSpec<T> spec_;
  Workspace<T> workspace_;
  std::vector<T> jacobian_;  // scratch of gauss_newton, m x n_params
  CacheLineVector<T> class_targets_;  // one-hot rows of train_step_on_class_ids, m x n_outputs
  std::mutex mutex_;
};

template <typename T>
void bind_engine(py::module_& m, const char* name) {
  py::class_<Engine<T>>(m, name)
      .def(py::init<index_t, const std::vector<index_t>&, const std::vector<index_t>&,
                    const std::vector<std::vector<int>>&, const std::vector<int>&,
                    const std::vector<double>&, const std::vector<double>&, std::uint64_t, bool,
                    int, double, int, int>(),
           py::arg("inputs"), py::arg("fan_ins"), py::arg("fan_outs"), py::arg("sources"),
           py::arg("hidden_kinds"), py::arg("hidden_alphas"), py::arg("dropout"),
           py::arg("dropout_seed"),
           py::arg("softmax_output"), py::arg("output_kind"), py::arg("output_alpha"),
           py::arg("loss"), py::arg("reduction"))
      .def_property_readonly("n_params", &Engine<T>::n_params)
      .def("forward", &Engine<T>::forward, py::arg("params"), py::arg("X"), py::arg("out"))
      .def("loss", &Engine<T>::loss, py::arg("params"), py::arg("X"), py::arg("y"),
           py::arg("sample_weight") = py::none(), py::arg("dropout_step") = index_t(-1))
      .def("loss_and_grad", &Engine<T>::loss_and_grad, py::arg("params"), py::arg("X"),
           py::arg("y"), py::arg("grads"), py::arg("sample_weight") = py::none(),
           py::arg("dropout_step") = index_t(-1))
      .def("gradient_bound", &Engine<T>::gradient_bound, py::arg("params"), py::arg("X"),
           py::arg("y"), py::arg("grads"), py::arg("sample_weight") = py::none(),
           py::arg("dropout_step") = index_t(-1))
      .def("gradient_bound_before_backward", &Engine<T>::gradient_bound_before_backward,
           py::arg("params"), py::arg("X"), py::arg("y"), py::arg("grads"),
           py::arg("weight_bound"), py::arg("sample_weight") = py::none(),
           py::arg("dropout_step") = index_t(-1))
      .def("train_step", &Engine<T>::train_step, py::arg("params"), py::arg("grads"),
           py::arg("state"), py::arg("optimizer"), py::arg("X"), py::arg("y"),
           py::arg("sample_weight") = py::none())
      .def("train_step_on_class_ids", &Engine<T>::train_step_on_class_ids, py::arg("params"),
           py::arg("grads"), py::arg("state"), py::arg("optimizer"), py::arg("X"), py::arg("y"))
      .def("train_epoch", &Engine<T>::train_epoch, py::arg("params"), py::arg("grads"),
           py::arg("state"), py::arg("optimizer"), py::arg("X"), py::arg("y"),
           py::arg("order"), py::arg("batch_size"), py::arg("sample_weight") = py::none())
      .def("gauss_newton", &Engine<T>::gauss_newton, py::arg("params"), py::arg("X"), py::arg("y"),
           py::arg("jtj"), py::arg("jte"))
      .def("workspace_line_offsets", &Engine<T>::workspace_line_offsets);
}

}  // namespace

void register_engine(py::module_& m) {
  bind_engine<float>(m, "Engine32");
  bind_engine<double>(m, "Engine64");
}

}  // namespace backprop::bindings
