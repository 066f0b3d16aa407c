// Per-sample Jacobians of the outputs, reduced to the Gauss-Newton system J^T J, J^T e.
#include "backprop/jacobian.hpp"

#include <algorithm>

#include "backprop/gemm.hpp"
#include "backprop/threads.hpp"

namespace backprop {
namespace {

// Row i of J for one output: for every layer, the outer product of the layer's input row with
// its delta row (the weights), then the delta row itself (the biases), in the flat layout.
template <typename T>
void fill_jacobian_rows(const NetworkSpec<T>& net, const T* x, index_t m, const Workspace<T>& ws,
                        T* jac, index_t n_params) {
  parallel_for(m, m * n_params >= kElementwiseParallelMin, [&](index_t i) {
    T* out = jac + i * n_params;
    for (std::size_t l = 0; l < net.layers.size(); ++l) {
      const LayerSpec<T>& layer = net.layers[l];
      const T* delta = ws.grad_post[l].data() + i * layer.fan_out;
      T* w = out + net.weight_offset(l);
      for (int s : layer.sources) {
        const index_t width = net.source_width(s);
        const T* in = (s == 0 ? x : ws.post[std::size_t(s - 1)].data()) + i * width;
        for (index_t a = 0; a < width; ++a, w += layer.fan_out)
          for (index_t b = 0; b < layer.fan_out; ++b) w[b] = in[a] * delta[b];
      }
      std::copy(delta, delta + layer.fan_out, out + net.bias_offset(l));
    }
  });
}

}  // namespace

template <typename T>
double gauss_newton_accumulate(const NetworkSpec<T>& net, const T* params, const T* x, const T* y,
                               index_t m, Workspace<T>& ws, std::vector<T>& jac, T* jtj, T* jte) {
  // jtj (P x P) += J^T J, jte (P) += J^T e over m rows and n outputs; returns 1/2 sum e^2
  const index_t n_params = net.n_params(), n_out = net.n_outputs();
  const T* y_hat = mlp_forward(net, params, x, m, ws);
  double half_sse = 0.0;
  std::vector<T> residual(static_cast<std::size_t>(m));
  jac.resize(std::size_t(m * n_params));
  for (index_t i = 0; i < m * n_out; ++i) {
    const double e = double(y_hat[i]) - double(y[i]);
    half_sse += 0.5 * e * e;
  }
  T* seed = ws.grad_post.back().data();
  for (index_t k = 0; k < n_out; ++k) {
    // d y_hat_k / dU_L: the output's Jacobian-transpose applied to the unit vector of output k.
    std::fill(seed, seed + m * n_out, T(0));
    for (index_t i = 0; i < m; ++i) seed[i * n_out + k] = T(1);
    if (net.output.softmax)
      softmax_backward(seed, seed, y_hat, m, n_out);
    else
      activation_backward(seed, seed, ws.pre.back().data(), y_hat, m * n_out, net.output.act);
    mlp_backprop(net, params, x, m, ws, static_cast<T*>(nullptr));
    fill_jacobian_rows(net, x, m, ws, jac.data(), n_params);
    for (index_t i = 0; i < m; ++i)
      residual[std::size_t(i)] = y_hat[i * n_out + k] - y[i * n_out + k];
    gemm<T>(true, false, n_params, n_params, m, T(1), jac.data(), n_params, jac.data(), n_params,
            T(1), jtj, n_params);
    gemm<T>(true, false, n_params, 1, m, T(1), jac.data(), n_params, residual.data(), 1, T(1), jte,
            1);
  }
  return half_sse;
}

template double gauss_newton_accumulate<float>(const NetworkSpec<float>&, const float*,
                                               const float*, const float*, index_t,
                                               Workspace<float>&, std::vector<float>&, float*,
                                               float*);
template double gauss_newton_accumulate<double>(const NetworkSpec<double>&, const double*,
                                                const double*, const double*, index_t,
                                                Workspace<double>&, std::vector<double>&, double*,
                                                double*);

}  // namespace backprop
