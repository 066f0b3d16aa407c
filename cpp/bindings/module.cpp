// The private extension module backprop._core; the public API is the Python package around it.
#include <pybind11/pybind11.h>

#include "register.hpp"

PYBIND11_MODULE(_core, m) {
  m.doc() = "Native kernels and training engine of backprop (private: use the backprop package).";
  backprop::bindings::register_system(m);
  backprop::bindings::register_kernels(m);
  backprop::bindings::register_inputs(m);
  backprop::bindings::register_optim(m);
  backprop::bindings::register_engine(m);
}
