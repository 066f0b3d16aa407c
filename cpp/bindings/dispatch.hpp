// Runs a generic lambda with float or double chosen by an array's dtype.
#pragma once

#include <string>

#include "validate.hpp"

namespace backprop::bindings {

// f receives a value of the element type (float{} or double{}) as its only argument.
template <typename F>
auto dispatch_float(const py::array& a, const char* name, F&& f) {
  bool is_double = false;
  if (!float_kind(a, is_double))
    fail_type(std::string(name) + " must have dtype float32 or float64, got " +
              std::string(py::str(a.dtype())));
  if (is_double) return f(double{});
  return f(float{});
}

}  // namespace backprop::bindings
