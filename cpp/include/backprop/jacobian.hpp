// The Gauss-Newton system of a network's sum of squared errors, from per-output backward passes.
#pragma once

#include <vector>

#include "backprop/mlp.hpp"

namespace backprop {

// For E = 1/2 sum over rows i and outputs k of e_ik^2, e = y_hat - y, and J = d y_hat / d params
// (one row per (i, k)): adds J^T J into jtj (n_params x n_params, row-major) and J^T e into jte
// (n_params), and returns E. Each output k takes one backward pass seeded with the output's
// Jacobian-transpose times the unit vector e_k: a Jacobian-transpose product per output unit.
// jac is scratch, grown to m x n_params.
template <typename T>
double gauss_newton_accumulate(const NetworkSpec<T>& net, const T* params, const T* x, const T* y,
                               index_t m, Workspace<T>& ws, std::vector<T>& jac, T* jtj, T* jte);

}  // namespace backprop
