// Forward and backward passes of a fully connected network over its flat parameter buffer.
#include "backprop/mlp.hpp"

#include <algorithm>
#include <utility>

#include "backprop/gemm.hpp"

namespace backprop {

template <typename T>
index_t NetworkSpec<T>::weight_offset(std::size_t l) const {
  index_t offset = 0;
  for (std::size_t i = 0; i < l; ++i) offset += layers[i].fan_in * layers[i].fan_out + layers[i].fan_out;
  return offset;
}

template <typename T>
index_t NetworkSpec<T>::n_params() const {
  return weight_offset(layers.size());
}

template <typename T>
void Workspace<T>::reserve(const NetworkSpec<T>& net, index_t rows) {
  if (rows <= capacity && pre.size() == net.layers.size()) return;
  const index_t cap = std::max(rows, capacity);
  index_t widest = 0;
  pre.resize(net.layers.size());
  post.resize(net.layers.size());
  for (std::size_t l = 0; l < net.layers.size(); ++l) {
    const index_t width = net.layers[l].fan_out;
    widest = std::max({widest, width, net.layers[l].fan_in});
    pre[l].assign(std::size_t(cap * width), T(0));
    post[l].assign(std::size_t(cap * width), T(0));
  }
  delta_a.assign(std::size_t(cap * widest), T(0));
  delta_b.assign(std::size_t(cap * widest), T(0));
  batch_x.assign(std::size_t(cap * net.n_inputs()), T(0));
  batch_y.assign(std::size_t(cap * net.n_outputs()), T(0));
  capacity = cap;
}

template <typename T>
const T* mlp_forward(const NetworkSpec<T>& net, const T* params, const T* x, index_t m,
                     Workspace<T>& ws) {
  // for each layer: U (m x fan_out) = X_prev (m x fan_in) @ W + b; X = f(U)
  ws.reserve(net, m);
  const T* in = x;
  for (std::size_t l = 0; l < net.layers.size(); ++l) {
    const LayerSpec<T>& layer = net.layers[l];
    const T* w = params + net.weight_offset(l);
    const T* b = params + net.bias_offset(l);
    T* u = ws.pre[l].data();
    for (index_t i = 0; i < m; ++i) std::copy(b, b + layer.fan_out, u + i * layer.fan_out);
    gemm<T>(false, false, m, layer.fan_out, layer.fan_in, T(1), in, layer.fan_in, w,
            layer.fan_out, T(1), u, layer.fan_out);
    T* out = ws.post[l].data();
    if (l + 1 == net.layers.size())
      output_forward(out, u, m, layer.fan_out, net.output);
    else
      activation_forward(out, u, m * layer.fan_out, layer.act);
    in = out;
  }
  return ws.post.back().data();
}

template <typename T>
void mlp_backward(const NetworkSpec<T>& net, const T* params, const T* x, const T* y, index_t m,
                  Workspace<T>& ws, T* grads) {
  // D_L = dLoss/dU_L; dW_l += X_{l-1}^T D_l; db_l += colsum(D_l); D_{l-1} = (D_l W_l^T) * f'(U_{l-1})
  const std::size_t n_layers = net.layers.size();
  T* delta = ws.delta_a.data();
  T* delta_prev = ws.delta_b.data();
  const LayerSpec<T>& last = net.layers.back();
  loss_backward(delta, net.loss, net.reduction, ws.pre.back().data(), ws.post.back().data(), y, m,
                last.fan_out, net.output);
  for (std::size_t l = n_layers; l-- > 0;) {
    const LayerSpec<T>& layer = net.layers[l];
    const T* in = l == 0 ? x : ws.post[l - 1].data();
    T* dw = grads + net.weight_offset(l);
    T* db = grads + net.bias_offset(l);
    gemm<T>(true, false, layer.fan_in, layer.fan_out, m, T(1), in, layer.fan_in, delta,
            layer.fan_out, T(1), dw, layer.fan_out);
    bias_grad(db, delta, m, layer.fan_out);
    if (l == 0) break;  // the input needs no delta
    const T* w = params + net.weight_offset(l);
    gemm<T>(false, true, m, layer.fan_in, layer.fan_out, T(1), delta, layer.fan_out, w,
            layer.fan_out, T(0), delta_prev, layer.fan_in);
    activation_backward(delta_prev, delta_prev, ws.pre[l - 1].data(), ws.post[l - 1].data(),
                        m * layer.fan_in, net.layers[l - 1].act);
    std::swap(delta, delta_prev);
  }
}

#define BACKPROP_INSTANTIATE_MLP(T)                                                           \
  template struct NetworkSpec<T>;                                                             \
  template struct Workspace<T>;                                                               \
  template const T* mlp_forward<T>(const NetworkSpec<T>&, const T*, const T*, index_t,         \
                                   Workspace<T>&);                                            \
  template void mlp_backward<T>(const NetworkSpec<T>&, const T*, const T*, const T*, index_t,  \
                                Workspace<T>&, T*);
BACKPROP_INSTANTIATE_MLP(float)
BACKPROP_INSTANTIATE_MLP(double)
#undef BACKPROP_INSTANTIATE_MLP

}  // namespace backprop
