// Binds the checks and conversions the Python layer runs on every batch (checks.hpp).
#include <cstdint>
#include <string>
#include <utility>

#include "backprop/checks.hpp"
#include "dispatch.hpp"
#include "register.hpp"
#include "validate.hpp"

namespace backprop::bindings {

void register_inputs(py::module_& m) {
  m.def(
      "all_finite",
      [](const py::array& x) {
        return dispatch_float(x, "x", [&](auto tag) {
          using T = decltype(tag);
          const T* px = input_ptr<T>(x, "x", int(x.ndim()));
          const index_t n = index_t(x.size());
          py::gil_scoped_release release;
          return all_finite(px, n);
        });
      },
      py::arg("x"));

  // Returns the lowest and highest id; writes the one-hot rows only when every id is a class.
  m.def(
      "one_hot",
      [](const py::array& ids, const py::array& out) {
        const std::int64_t* pid = index_vector(ids, "ids", "class ids");
        const index_t n = ids.shape(0);
        return dispatch_float(out, "out", [&](auto tag) {
          using T = decltype(tag);
          T* pout = output_ptr<T>(out, "out", 2);
          if (out.shape(0) != n)
            fail_value("out must have one row per id: " + std::to_string(n) + ", got " +
                       shape_string(out));
          const index_t classes = out.shape(1);
          const IdRange range = id_range(pid, n);
          if (n > 0 && range.lowest >= 0 && range.highest < classes) one_hot(pout, pid, n, classes);
          return std::make_pair(range.lowest, range.highest);
        });
      },
      py::arg("ids"), py::arg("out"));
}

}  // namespace backprop::bindings
