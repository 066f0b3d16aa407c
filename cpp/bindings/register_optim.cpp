// Binds the optimizers: their hyper-parameter record, state layout and native updates.
#include <string>
#include <vector>

#include "backprop/float_mode.hpp"
#include "backprop/optim.hpp"
#include "dispatch.hpp"
#include "optimizer_state.hpp"
#include "register.hpp"
#include "validate.hpp"

namespace backprop::bindings {
namespace {

[[noreturn]] void throw_non_finite_update() {
  PyErr_SetString(PyExc_FloatingPointError,
                  "the update would make parameters or optimizer state NaN or Inf; nothing was "
                  "changed (check the gradients and the learning rate)");
  throw py::error_already_set();
}

void bind_step(py::module_& m, const char* name, bool reference) {
  m.def(
      name,
      [reference](const py::array& params, const py::array& grads, const py::list& state,
                  const OptimizerSpec& spec) {
        dispatch_float(params, "params", [&](auto tag) {
          using T = decltype(tag);
          T* p = output_ptr<T>(params, "params", int(params.ndim()));
          const T* g = input_ptr<T>(grads, "grads", int(grads.ndim()));
          require_same_shape(grads, "grads", params, "params");
          require_no_overlap(params, "params", grads, "grads");
          std::vector<T*> s = state_pointers<T>(state, spec, params, {{&grads, "grads"}});
          bool finite = false;
          {
            py::gil_scoped_release release;
            // Optimizer.step is a training step's update: it flushes subnormals as they do.
            const TrainingFloatMode mode;
            const index_t n = index_t(params.size());
            finite = reference ? optimizer_step_ref<T>(p, g, s.data(), n, spec)
                               : optimizer_step<T>(p, g, s.data(), n, spec);
          }
          if (!finite) throw_non_finite_update();
        });
      },
      py::arg("params"), py::arg("grads"), py::arg("state"), py::arg("optimizer"));
}

}  // namespace

void register_optim(py::module_& m) {
  py::enum_<OptimizerKind>(m, "OptimizerKind")
      .value("sgd", OptimizerKind::sgd)
      .value("adam", OptimizerKind::adam)
      .value("adamw", OptimizerKind::adamw)
      .value("rmsprop", OptimizerKind::rmsprop)
      .value("adagrad", OptimizerKind::adagrad)
      .value("rprop", OptimizerKind::rprop)
      .value("quickprop", OptimizerKind::quickprop);
  py::class_<OptimizerSpec>(m, "OptimizerSpec")
      .def(py::init<>())
      .def_readwrite("kind", &OptimizerSpec::kind)
      .def_readwrite("lr", &OptimizerSpec::lr)
      .def_readwrite("momentum", &OptimizerSpec::momentum)
      .def_readwrite("nesterov", &OptimizerSpec::nesterov)
      .def_readwrite("weight_decay", &OptimizerSpec::weight_decay)
      .def_readwrite("beta1", &OptimizerSpec::beta1)
      .def_readwrite("beta2", &OptimizerSpec::beta2)
      .def_readwrite("eps", &OptimizerSpec::eps)
      .def_readwrite("alpha", &OptimizerSpec::alpha)
      .def_readwrite("centered", &OptimizerSpec::centered)
      .def_readwrite("lr_decay", &OptimizerSpec::lr_decay)
      .def_readwrite("eta_minus", &OptimizerSpec::eta_minus)
      .def_readwrite("eta_plus", &OptimizerSpec::eta_plus)
      .def_readwrite("step_min", &OptimizerSpec::step_min)
      .def_readwrite("step_max", &OptimizerSpec::step_max)
      .def_readwrite("max_growth", &OptimizerSpec::max_growth)
      .def_readwrite("clip_norm", &OptimizerSpec::clip_norm)
      .def_readwrite("clip_value", &OptimizerSpec::clip_value)
      .def_readwrite("l1", &OptimizerSpec::l1)
      .def_readwrite("step", &OptimizerSpec::step);
  m.def("optimizer_state_count", &optimizer_state_count, py::arg("optimizer"));
  bind_step(m, "optimizer_step", false);
  bind_step(m, "optimizer_step_ref", true);
  m.def(
      "sgd_update",
      [](const py::array& params, const py::array& grads, const py::object& velocity, double lr,
         double momentum, bool nesterov, double weight_decay) {
        dispatch_float(params, "params", [&](auto tag) {
          using T = decltype(tag);
          T* pp = output_ptr<T>(params, "params", int(params.ndim()));
          const T* pg = input_ptr<T>(grads, "grads", int(grads.ndim()));
          require_same_shape(grads, "grads", params, "params");
          require_no_overlap(params, "params", grads, "grads");
          T* pv = nullptr;
          if (momentum != 0.0) {
            if (velocity.is_none()) fail_value("velocity is required when momentum is not 0");
            if (!py::isinstance<py::array>(velocity))
              fail_type("velocity must be a numpy array: it is updated in place");
            const py::array v = py::reinterpret_borrow<py::array>(velocity);
            pv = output_ptr<T>(v, "velocity", int(v.ndim()));
            require_same_shape(v, "velocity", params, "params");
            require_no_overlap(v, "velocity", params, "params");
            require_no_overlap(v, "velocity", grads, "grads");
          }
          OptimizerSpec spec;
          spec.lr = lr;
          spec.momentum = momentum;
          spec.nesterov = nesterov;
          spec.weight_decay = weight_decay;
          bool finite = false;
          {
            py::gil_scoped_release release;
            finite = sgd_update(pp, pg, pv, index_t(params.size()), spec);
          }
          if (!finite) throw_non_finite_update();
        });
      },
      py::arg("params"), py::arg("grads"), py::arg("velocity"), py::arg("lr"),
      py::arg("momentum"), py::arg("nesterov"), py::arg("weight_decay"));
}

}  // namespace backprop::bindings
