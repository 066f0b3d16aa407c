// Argument checks shared by the bindings: every array the core reads or writes is checked here,
// with an exception that names the argument and says what was expected.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <initializer_list>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "backprop/config.hpp"

namespace backprop::bindings {

namespace py = pybind11;

template <typename T>
const char* dtype_name() {
  return sizeof(T) == 4 ? "float32" : "float64";
}

inline std::string shape_string(const py::array& a) {
  std::ostringstream out;
  out << "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) out << (i ? ", " : "") << a.shape(i);
  if (a.ndim() == 1) out << ",";
  out << ")";
  return out.str();
}

[[noreturn]] inline void fail_value(const std::string& message) { throw py::value_error(message); }
[[noreturn]] inline void fail_type(const std::string& message) { throw py::type_error(message); }

// True for float32 (sizeof 4) or float64 (sizeof 8) arrays; which one is returned in `is_double`.
inline bool float_kind(const py::array& a, bool& is_double) {
  if (a.dtype().is(py::dtype::of<float>())) {
    is_double = false;
    return true;
  }
  if (a.dtype().is(py::dtype::of<double>())) {
    is_double = true;
    return true;
  }
  return false;
}

// A float array the core reads: exact dtype, ndim and C order (the Python layer converts).
template <typename T>
const T* input_ptr(const py::array& a, const char* name, int ndim) {
  if (!a.dtype().is(py::dtype::of<T>()))
    fail_type(std::string(name) + " must have dtype " + dtype_name<T>() + ", got " +
              std::string(py::str(a.dtype())));
  if (a.ndim() != ndim)
    fail_value(std::string(name) + " must be " + std::to_string(ndim) + "-D, got " +
               std::to_string(a.ndim()) + "-D with shape " + shape_string(a));
  if (!(a.flags() & py::array::c_style))
    fail_value(std::string(name) + " must be C-contiguous");
  return static_cast<const T*>(a.data());
}

// A C-contiguous 1-D int64 array the core reads (row or class indices); `what` says what its
// entries are, for the message.
inline const std::int64_t* index_vector(const py::array& a, const char* name, const char* what) {
  if (!a.dtype().is(py::dtype::of<std::int64_t>()))
    fail_type(std::string(name) + " must have dtype int64, got " + std::string(py::str(a.dtype())));
  if (a.ndim() != 1 || !(a.flags() & py::array::c_style))
    fail_value(std::string(name) + " must be a C-contiguous 1-D array of " + what);
  return static_cast<const std::int64_t*>(a.data());
}

// A float array the core writes: also writable, since writing into a copy would lose the result.
template <typename T>
T* output_ptr(const py::array& a, const char* name, int ndim) {
  input_ptr<T>(a, name, ndim);
  if (!a.writeable()) fail_value(std::string(name) + " must be writable, got a read-only array");
  return static_cast<T*>(const_cast<void*>(a.data()));
}

inline void require_shape(const py::array& a, const char* name,
                          std::initializer_list<py::ssize_t> expected) {
  std::vector<py::ssize_t> want(expected);
  bool same = static_cast<std::size_t>(a.ndim()) == want.size();
  for (std::size_t i = 0; same && i < want.size(); ++i) same = a.shape(i) == want[i];
  if (same) return;
  std::ostringstream out;
  out << name << " must have shape (";
  for (std::size_t i = 0; i < want.size(); ++i) out << (i ? ", " : "") << want[i];
  out << (want.size() == 1 ? ",)" : ")") << ", got " << shape_string(a);
  fail_value(out.str());
}

inline void require_same_shape(const py::array& a, const char* a_name, const py::array& b,
                               const char* b_name) {
  bool same = a.ndim() == b.ndim();
  for (py::ssize_t i = 0; same && i < a.ndim(); ++i) same = a.shape(i) == b.shape(i);
  if (!same)
    fail_value(std::string(a_name) + " must have the shape of " + b_name + " " + shape_string(b) +
               ", got " + shape_string(a));
}

inline bool overlaps(const py::array& a, const py::array& b) {
  if (a.nbytes() == 0 || b.nbytes() == 0) return false;
  const auto a0 = reinterpret_cast<std::uintptr_t>(a.data());
  const auto b0 = reinterpret_cast<std::uintptr_t>(b.data());
  return a0 < b0 + std::uintptr_t(b.nbytes()) && b0 < a0 + std::uintptr_t(a.nbytes());
}

// An output must not share memory with anything else the call reads or writes.
inline void require_no_overlap(const py::array& out, const char* out_name, const py::array& other,
                               const char* other_name) {
  if (overlaps(out, other))
    fail_value(std::string(out_name) + " must not share memory with " + other_name);
}

}  // namespace backprop::bindings
