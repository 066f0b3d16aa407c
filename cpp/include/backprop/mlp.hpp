// A fully connected network over one flat parameter buffer: forward, loss and backward.
#pragma once

#include <vector>

#include "backprop/activations.hpp"
#include "backprop/config.hpp"
#include "backprop/losses.hpp"

namespace backprop {

// Layer l maps fan_in -> fan_out: U = X @ W + b, X_next = f(U). The last layer's f is the output.
template <typename T>
struct LayerSpec {
  index_t fan_in = 0;
  index_t fan_out = 0;
  ActivationParams<T> act;  // hidden layers only
};

template <typename T>
struct NetworkSpec {
  std::vector<LayerSpec<T>> layers;
  OutputSpec<T> output;
  Loss loss = Loss::mse;
  Reduction reduction = Reduction::mean;

  index_t n_inputs() const { return layers.front().fan_in; }
  index_t n_outputs() const { return layers.back().fan_out; }
  // Flat layout: W_1 (fan_in x fan_out, row-major), b_1, W_2, b_2, ...
  index_t weight_offset(std::size_t l) const;
  index_t bias_offset(std::size_t l) const { return weight_offset(l) + layers[l].fan_in * layers[l].fan_out; }
  index_t n_params() const;
};

// Buffers for one batch of up to `capacity` rows, sized once and reused: every layer's
// pre-activation U_l and output X_l, two delta buffers, and a gathered input/target batch.
template <typename T>
struct Workspace {
  index_t capacity = 0;
  std::vector<std::vector<T>> pre;   // U_l, capacity x fan_out
  std::vector<std::vector<T>> post;  // X_l = f(U_l); for the last layer, y_hat
  std::vector<T> delta_a, delta_b;   // capacity x widest layer
  std::vector<T> batch_x, batch_y;   // rows gathered by train_epoch

  void reserve(const NetworkSpec<T>& net, index_t rows);
};

// Forward pass over m rows of x (m x n_inputs); keeps U_l and X_l in ws. Returns y_hat
// (m x n_outputs, inside ws).
template <typename T>
const T* mlp_forward(const NetworkSpec<T>& net, const T* params, const T* x, index_t m,
                     Workspace<T>& ws);

// Backward pass after mlp_forward on the same x: adds dLoss/dparams into grads (flat, the
// layout of params). Only zero_grad-style callers clear grads.
template <typename T>
void mlp_backward(const NetworkSpec<T>& net, const T* params, const T* x, const T* y, index_t m,
                  Workspace<T>& ws, T* grads);

}  // namespace backprop
