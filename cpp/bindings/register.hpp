// The registration functions module.cpp calls, one per concept.
#pragma once

#include <pybind11/pybind11.h>

namespace backprop::bindings {

void register_kernels(pybind11::module_& m);
void register_engine(pybind11::module_& m);
void register_system(pybind11::module_& m);
void register_optim(pybind11::module_& m);
void register_inputs(pybind11::module_& m);

}  // namespace backprop::bindings
