// Binds the standalone kernels (GEMM, activations, losses, bias gradient, SGD update).
#include <algorithm>
#include <array>
#include <utility>
#include <string>
#include <vector>

#include "backprop/activations.hpp"
#include "backprop/aligned_buffer.hpp"
#include "backprop/gemm.hpp"
#include "backprop/losses.hpp"
#include "dispatch.hpp"
#include "register.hpp"
#include "validate.hpp"

namespace backprop::bindings {
namespace {

Activation activation_kind(int kind) {
  if (kind < 0 || kind > static_cast<int>(Activation::gelu))
    fail_value("activation must name a known activation, got code " + std::to_string(kind));
  return static_cast<Activation>(kind);
}

template <typename T>
OutputSpec<T> output_spec(bool softmax, int kind, double alpha) {
  OutputSpec<T> out;
  out.softmax = softmax;
  out.act = {softmax ? Activation::identity : activation_kind(kind), T(alpha)};
  return out;
}

Loss loss_kind(int kind) {
  if (kind < 0 || kind > static_cast<int>(Loss::cross_entropy))
    fail_value("loss must name a known loss, got code " + std::to_string(kind));
  return static_cast<Loss>(kind);
}

Reduction reduction_kind(int kind) {
  if (kind != 0 && kind != 1) fail_value("reduction must be 'mean' or 'sum'");
  return static_cast<Reduction>(kind);
}

// The operands of out = op(A) @ op(B), every one checked: pointers and the product's shape.
template <typename T>
struct GemmOperands {
  const T* a;
  const T* b;
  T* c;
  index_t rows, cols, inner;
};

template <typename T>
GemmOperands<T> gemm_operands(const py::array& a, const py::array& b, const py::array& out,
                              bool trans_a, bool trans_b) {
  GemmOperands<T> ops{input_ptr<T>(a, "A", 2), input_ptr<T>(b, "B", 2),
                      output_ptr<T>(out, "out", 2), 0, 0, 0};
  ops.rows = trans_a ? a.shape(1) : a.shape(0);
  ops.inner = trans_a ? a.shape(0) : a.shape(1);
  const index_t inner_b = trans_b ? b.shape(1) : b.shape(0);
  ops.cols = trans_b ? b.shape(0) : b.shape(1);
  if (ops.inner != inner_b)
    fail_value("A and B do not fit: op(A) has shape (" + std::to_string(ops.rows) + ", " +
               std::to_string(ops.inner) + ") and op(B) has shape (" + std::to_string(inner_b) +
               ", " + std::to_string(ops.cols) + ")");
  require_shape(out, "out", {ops.rows, ops.cols});
  require_no_overlap(out, "out", a, "A");
  require_no_overlap(out, "out", b, "B");
  return ops;
}

// out = alpha * op(A) @ op(B) + beta * out, after checking every operand; summed in at least
// min_k_blocks k blocks (gemm_k_block; the reference ignores it).
template <typename T>
void run_gemm(bool reference, const py::array& a, const py::array& b, const py::array& out,
              bool trans_a, bool trans_b, double alpha, double beta, index_t min_k_blocks) {
  const GemmOperands<T> ops = gemm_operands<T>(a, b, out, trans_a, trans_b);
  py::gil_scoped_release release;
  if (reference)
    gemm_ref<T>(trans_a, trans_b, ops.rows, ops.cols, ops.inner, T(alpha), ops.a, a.shape(1),
                ops.b, b.shape(1), T(beta), ops.c, ops.cols);
  else
    gemm_fused<T>(trans_a, trans_b, ops.rows, ops.cols, ops.inner, T(alpha), ops.a, a.shape(1),
                  ops.b, b.shape(1), T(beta), ops.c, ops.cols, GemmEpilogue<T>{},
                  GemmSplit::slabs_of_c, min_k_blocks);
}

// Whether gemm(A, B, out=out) split into `threads` slabs would give each thread whole columns
// of out rather than whole rows (the tests check which way their shapes go). The answer holds
// for a product gemm splits into slabs; one it keeps on one thread, shares between the threads
// (from kGemmSharedMinFlops, on the paths whose family shares packed blocks) or gives to the
// narrow kernel (TN, n <= 12) never asks.
void bind_gemm_splits_by_columns(py::module_& m) {
  m.def(
      "gemm_splits_by_columns",
      [](const py::array& a, const py::array& b, const py::array& out, bool trans_a,
         bool trans_b, int threads) {
        if (threads < 2) fail_value("threads must be at least 2, got " + std::to_string(threads));
        bool by_columns = false;
        dispatch_float(out, "out", [&](auto tag) {
          using T = decltype(tag);
          const GemmOperands<T> ops = gemm_operands<T>(a, b, out, trans_a, trans_b);
          by_columns = gemm_splits_by_columns<T>(trans_a, trans_b, ops.rows, ops.cols, ops.inner,
                                                 a.shape(1), b.shape(1), ops.c, ops.cols,
                                                 threads);
        });
        return by_columns;
      },
      py::arg("A"), py::arg("B"), py::arg("out"), py::arg("trans_a"), py::arg("trans_b"),
      py::arg("threads"));
}

void bind_gemm(py::module_& m, const char* name, bool reference) {
  m.def(
      name,
      [reference](const py::array& a, const py::array& b, const py::array& out, bool trans_a,
                  bool trans_b, double alpha, double beta, index_t min_k_blocks) {
        if (min_k_blocks < 1) fail_value("min_k_blocks must be at least 1");
        dispatch_float(out, "out", [&](auto tag) {
          run_gemm<decltype(tag)>(reference, a, b, out, trans_a, trans_b, alpha, beta,
                                  min_k_blocks);
        });
      },
      py::arg("A"), py::arg("B"), py::arg("out"), py::arg("trans_a"), py::arg("trans_b"),
      py::arg("alpha"), py::arg("beta"), py::arg("min_k_blocks") = 1);
}

// True when h is a C-contiguous 2-D float32 or float64 array.
bool ready_matrix(const py::handle& h, bool& is_double) {
  if (!py::isinstance<py::array>(h)) return false;
  const auto matrix = py::reinterpret_borrow<py::array>(h);
  return float_kind(matrix, is_double) && matrix.ndim() == 2 &&
         (matrix.flags() & py::array::c_style);
}

bool exact_number(const py::handle& h, double& value) {
  if (PyFloat_CheckExact(h.ptr())) {
    value = PyFloat_AS_DOUBLE(h.ptr());
    return true;
  }
  if (!PyLong_CheckExact(h.ptr())) return false;
  value = PyLong_AsDouble(h.ptr());
  if (value == -1.0 && PyErr_Occurred()) {
    PyErr_Clear();
    return false;
  }
  return true;
}

// A new rows x cols array whose data starts on a 64-byte line (CacheLineAllocator's reason):
// NumPy's own large blocks start 16 bytes past one.
py::array array_on_cache_lines(const py::dtype& dtype, py::ssize_t rows, py::ssize_t cols) {
  void* data = cache_line_alloc(std::size_t(std::max<py::ssize_t>(1, rows * cols)),
                                std::size_t(dtype.itemsize()));
  const py::capsule owner(data, [](void* memory) { std::free(memory); });
  return py::array(dtype, {rows, cols}, data, owner);
}

// kernels.gemm's first try: with operands that need no conversion (same-dtype C-contiguous
// matrices, bool flags, int or float scalars, out absent or of that dtype) it computes and
// returns out, saving the Python layer's checks on small products; anything else returns None
// and the Python layer converts and checks as usual.
void bind_gemm_ready(py::module_& m) {
  m.def("gemm_ready", [](py::handle a, py::handle b, py::handle out, py::handle trans_a,
                         py::handle trans_b, py::handle alpha, py::handle beta) -> py::object {
    bool a_double = false, b_double = false, out_double = false;
    double alpha_value = 0, beta_value = 0;
    if (!ready_matrix(a, a_double) || !ready_matrix(b, b_double) || a_double != b_double ||
        !PyBool_Check(trans_a.ptr()) || !PyBool_Check(trans_b.ptr()) ||
        !exact_number(alpha, alpha_value) || !exact_number(beta, beta_value))
      return py::none();
    const auto pa = py::reinterpret_borrow<py::array>(a);
    const auto pb = py::reinterpret_borrow<py::array>(b);
    const bool ta = trans_a.ptr() == Py_True, tb = trans_b.ptr() == Py_True;
    if (out.is_none() ? beta_value != 0
                      : !py::isinstance<py::array>(out) ||
                            !float_kind(py::reinterpret_borrow<py::array>(out), out_double) ||
                            out_double != a_double)
      return py::none();
    const py::array result =
        out.is_none() ? array_on_cache_lines(pa.dtype(), ta ? pa.shape(1) : pa.shape(0),
                                             tb ? pb.shape(0) : pb.shape(1))
                      : py::reinterpret_borrow<py::array>(out);
    if (a_double)
      run_gemm<double>(false, pa, pb, result, ta, tb, alpha_value, beta_value, 1);
    else
      run_gemm<float>(false, pa, pb, result, ta, tb, alpha_value, beta_value, 1);
    return result;
  });
}

// op(A) @ B's sizes (rows, inner, cols) after checking that A and B fit.
std::array<index_t, 3> product_sizes(const py::array& a, const char* a_name, const py::array& b,
                                     const char* b_name, bool trans_b) {
  const index_t inner_b = trans_b ? b.shape(1) : b.shape(0);
  if (a.shape(1) != inner_b)
    fail_value(std::string(a_name) + " and " + b_name + " do not fit: " + a_name +
               " has shape " + shape_string(a) + ", so " + b_name + " must have " +
               std::to_string(a.shape(1)) + (trans_b ? " columns" : " rows") + "; got shape " +
               shape_string(b));
  return {a.shape(0), a.shape(1), trans_b ? b.shape(0) : b.shape(1)};
}

// The dense layer's forward and its hidden delta, each one GEMM with a fused epilogue.
void bind_dense(py::module_& m) {
  m.def(
      "dense_forward",
      [](const py::array& x, const py::array& w, const py::object& b, const py::array& u_out,
         const py::array& y_out, int kind, double alpha, bool k_blocks) {
        dispatch_float(u_out, "u_out", [&](auto tag) {
          using T = decltype(tag);
          const T* px = input_ptr<T>(x, "X", 2);
          const T* pw = input_ptr<T>(w, "W", 2);
          const auto [rows, inner, cols] = product_sizes(x, "X", w, "W", false);
          const T* pb = nullptr;
          if (!b.is_none()) {
            const auto bias = py::reinterpret_borrow<py::array>(b);
            pb = input_ptr<T>(bias, "b", 1);
            require_shape(bias, "b", {cols});
          }
          T* pu = output_ptr<T>(u_out, "u_out", 2);
          T* py_ = output_ptr<T>(y_out, "y_out", 2);
          require_shape(u_out, "u_out", {rows, cols});
          require_shape(y_out, "y_out", {rows, cols});
          for (const auto& [out, name] : {std::pair{&u_out, "u_out"}, std::pair{&y_out, "y_out"}}) {
            require_no_overlap(*out, name, x, "X");
            require_no_overlap(*out, name, w, "W");
            if (!b.is_none()) require_no_overlap(*out, name, py::reinterpret_borrow<py::array>(b), "b");
          }
          require_no_overlap(y_out, "y_out", u_out, "u_out");
          const auto epilogue =
              GemmEpilogue<T>::forward(pb, {activation_kind(kind), T(alpha)}, py_, cols);
          py::gil_scoped_release release;
          gemm_fused(false, false, rows, cols, inner, T(1), px, inner, pw, cols, T(0), pu, cols,
                     epilogue, k_blocks ? GemmSplit::k_blocks : GemmSplit::slabs_of_c);
        });
      },
      py::arg("X"), py::arg("W"), py::arg("b"), py::arg("u_out"), py::arg("y_out"),
      py::arg("kind"), py::arg("alpha"), py::arg("k_blocks") = false);
  m.def(
      "hidden_delta",
      [](const py::array& d, const py::array& w, const py::array& u, const py::array& out,
         int kind, double alpha) {
        dispatch_float(out, "out", [&](auto tag) {
          using T = decltype(tag);
          const T* pd = input_ptr<T>(d, "delta", 2);
          const T* pw = input_ptr<T>(w, "W", 2);
          const T* pu = input_ptr<T>(u, "u", 2);
          const auto [rows, inner, cols] = product_sizes(d, "delta", w, "W", true);
          require_shape(u, "u", {rows, cols});
          T* pout = output_ptr<T>(out, "out", 2);
          require_shape(out, "out", {rows, cols});
          require_no_overlap(out, "out", d, "delta");
          require_no_overlap(out, "out", w, "W");
          require_no_overlap(out, "out", u, "u");
          const auto epilogue =
              GemmEpilogue<T>::backward({activation_kind(kind), T(alpha)}, pu, nullptr, cols);
          py::gil_scoped_release release;
          gemm_fused(false, true, rows, cols, inner, T(1), pd, inner, pw, inner, T(0), pout, cols,
                     epilogue);
        });
      },
      py::arg("delta"), py::arg("W"), py::arg("u"), py::arg("out"), py::arg("kind"),
      py::arg("alpha"));
}

void bind_activations(py::module_& m) {
  m.def(
      "activation_forward",
      [](const py::array& u, const py::array& out, int kind, double alpha) {
        dispatch_float(out, "out", [&](auto tag) {
          using T = decltype(tag);
          const T* pu = input_ptr<T>(u, "u", int(u.ndim()));
          T* py_out = output_ptr<T>(out, "out", int(out.ndim()));
          require_same_shape(out, "out", u, "u");
          require_no_overlap(out, "out", u, "u");
          const ActivationParams<T> act{activation_kind(kind), T(alpha)};
          py::gil_scoped_release release;
          activation_forward(py_out, pu, index_t(u.size()), act);
        });
      },
      py::arg("u"), py::arg("out"), py::arg("kind"), py::arg("alpha"));
  m.def(
      "activation_backward",
      [](const py::array& dy, const py::array& u, const py::array& out, int kind, double alpha) {
        dispatch_float(out, "out", [&](auto tag) {
          using T = decltype(tag);
          const T* pdy = input_ptr<T>(dy, "grad", int(dy.ndim()));
          const T* pu = input_ptr<T>(u, "u", int(u.ndim()));
          T* pout = output_ptr<T>(out, "out", int(out.ndim()));
          require_same_shape(dy, "grad", u, "u");
          require_same_shape(out, "out", u, "u");
          require_no_overlap(out, "out", u, "u");
          require_no_overlap(out, "out", dy, "grad");
          const ActivationParams<T> act{activation_kind(kind), T(alpha)};
          py::gil_scoped_release release;
          activation_backward(pout, pdy, pu, static_cast<const T*>(nullptr), index_t(u.size()), act);
        });
      },
      py::arg("grad"), py::arg("u"), py::arg("out"), py::arg("kind"), py::arg("alpha"));
  m.def(
      "softmax_forward",
      [](const py::array& u, const py::array& out) {
        dispatch_float(out, "out", [&](auto tag) {
          using T = decltype(tag);
          const T* pu = input_ptr<T>(u, "u", 2);
          T* pout = output_ptr<T>(out, "out", 2);
          require_same_shape(out, "out", u, "u");
          require_no_overlap(out, "out", u, "u");
          py::gil_scoped_release release;
          softmax_forward(pout, pu, u.shape(0), u.shape(1));
        });
      },
      py::arg("u"), py::arg("out"));
  m.def(
      "softmax_backward",
      [](const py::array& dp, const py::array& p, const py::array& out) {
        dispatch_float(out, "out", [&](auto tag) {
          using T = decltype(tag);
          const T* pdp = input_ptr<T>(dp, "grad", 2);
          const T* pp = input_ptr<T>(p, "p", 2);
          T* pout = output_ptr<T>(out, "out", 2);
          require_same_shape(dp, "grad", p, "p");
          require_same_shape(out, "out", p, "p");
          require_no_overlap(out, "out", p, "p");
          require_no_overlap(out, "out", dp, "grad");
          py::gil_scoped_release release;
          softmax_backward(pout, pdp, pp, p.shape(0), p.shape(1));
        });
      },
      py::arg("grad"), py::arg("p"), py::arg("out"));
}

void bind_losses(py::module_& m) {
  m.def(
      "loss_forward",
      [](int loss, int reduction, bool softmax, int kind, double alpha, const py::array& u,
         const py::array& y) {
        return dispatch_float(u, "u", [&](auto tag) {
          using T = decltype(tag);
          const T* pu = input_ptr<T>(u, "u", 2);
          const T* py_ = input_ptr<T>(y, "y", 2);
          require_same_shape(y, "y", u, "u");
          const auto out = output_spec<T>(softmax, kind, alpha);
          const Loss l = loss_kind(loss);
          const Reduction r = reduction_kind(reduction);
          const index_t rows = u.shape(0), cols = u.shape(1);
          std::vector<T> y_hat(std::size_t(rows * cols));
          py::gil_scoped_release release;
          output_forward(y_hat.data(), pu, rows, cols, out);
          return loss_forward(l, r, pu, y_hat.data(), py_, static_cast<const T*>(nullptr), rows, cols,
                              out);
        });
      },
      py::arg("loss"), py::arg("reduction"), py::arg("softmax"), py::arg("kind"),
      py::arg("alpha"), py::arg("u"), py::arg("y"));
  m.def(
      "loss_backward",
      [](int loss, int reduction, bool softmax, int kind, double alpha, const py::array& u,
         const py::array& y, const py::array& out) {
        dispatch_float(out, "out", [&](auto tag) {
          using T = decltype(tag);
          const T* pu = input_ptr<T>(u, "u", 2);
          const T* py_ = input_ptr<T>(y, "y", 2);
          T* pout = output_ptr<T>(out, "out", 2);
          require_same_shape(y, "y", u, "u");
          require_same_shape(out, "out", u, "u");
          require_no_overlap(out, "out", u, "u");
          require_no_overlap(out, "out", y, "y");
          const auto spec = output_spec<T>(softmax, kind, alpha);
          const Loss l = loss_kind(loss);
          const Reduction r = reduction_kind(reduction);
          if (l == Loss::cross_entropy && !spec.softmax)
            fail_value("cross_entropy needs a softmax output");
          if (l == Loss::binary_cross_entropy &&
              (spec.softmax || spec.act.kind != Activation::sigmoid))
            fail_value("binary_cross_entropy needs a sigmoid output");
          const index_t rows = u.shape(0), cols = u.shape(1);
          std::vector<T> y_hat(std::size_t(rows * cols));
          py::gil_scoped_release release;
          output_forward(y_hat.data(), pu, rows, cols, spec);
          loss_backward(pout, l, r, pu, y_hat.data(), py_, static_cast<const T*>(nullptr), rows, cols,
                        spec);
        });
      },
      py::arg("loss"), py::arg("reduction"), py::arg("softmax"), py::arg("kind"),
      py::arg("alpha"), py::arg("u"), py::arg("y"), py::arg("out"));
  m.def(
      "bias_grad",
      [](const py::array& d, const py::array& out, bool accumulate) {
        dispatch_float(out, "out", [&](auto tag) {
          using T = decltype(tag);
          const T* pd = input_ptr<T>(d, "grad", 2);
          T* pout = output_ptr<T>(out, "out", 1);
          require_shape(out, "out", {d.shape(1)});
          require_no_overlap(out, "out", d, "grad");
          py::gil_scoped_release release;
          if (!accumulate) std::fill(pout, pout + d.shape(1), T(0));
          bias_grad(pout, pd, d.shape(0), d.shape(1));
        });
      },
      py::arg("grad"), py::arg("out"), py::arg("accumulate"));
}

}  // namespace

void register_kernels(py::module_& m) {
  bind_gemm(m, "gemm", false);
  bind_gemm(m, "gemm_ref", true);
  bind_gemm_ready(m);
  bind_gemm_splits_by_columns(m);
  bind_activations(m);
  bind_dense(m);
  bind_losses(m);
}

}  // namespace backprop::bindings
