// Checks the optimizer state buffers a native call will update.
#pragma once

#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "backprop/optim.hpp"
#include "validate.hpp"

namespace backprop::bindings {

// The buffers as pointers, padded with nullptr to 3: each must have the exact dtype and the
// params' shape, be writable, and share memory with nothing else the call touches.
template <typename T>
std::vector<T*> state_pointers(const py::list& state, const OptimizerSpec& spec,
                               const py::array& params,
                               std::initializer_list<std::pair<const py::array*, const char*>> others) {
  const int needed = optimizer_state_count(spec);
  if (int(py::len(state)) != needed)
    fail_value("state must hold " + std::to_string(needed) + " buffers for this optimizer, got " +
               std::to_string(py::len(state)));
  std::vector<py::array> arrays;
  std::vector<T*> pointers;
  for (const auto& item : state) {
    if (!py::isinstance<py::array>(item)) fail_type("state buffers must be numpy arrays");
    const py::array buffer = py::reinterpret_borrow<py::array>(item);
    pointers.push_back(output_ptr<T>(buffer, "state buffer", int(buffer.ndim())));
    require_same_shape(buffer, "state buffer", params, "params");
    require_no_overlap(buffer, "state buffer", params, "params");
    for (const auto& [other, name] : others) require_no_overlap(buffer, "state buffer", *other, name);
    for (const auto& earlier : arrays)
      require_no_overlap(buffer, "state buffer", earlier, "another state buffer");
    arrays.push_back(buffer);
  }
  while (pointers.size() < 3) pointers.push_back(nullptr);
  return pointers;
}

}  // namespace backprop::bindings
