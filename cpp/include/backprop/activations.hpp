// Elementwise activations and their derivatives, and the softmax used as an output.
#pragma once

#include "backprop/config.hpp"

namespace backprop {

enum class Activation : int {
  identity = 0,
  sigmoid = 1,
  tanh = 2,
  relu = 3,
  leaky_relu = 4,
  elu = 5,
  softplus = 6,
  gelu = 7,  // the exact form, x * Phi(x), as torch.nn.GELU()
};

// Slope for x < 0 of leaky_relu (default 0.01) and the saturation value of elu (default 1.0);
// ignored by the others.
template <typename T>
struct ActivationParams {
  Activation kind = Activation::identity;
  T alpha = T(0);
};

template <typename T>
T default_activation_alpha(Activation kind);

// y = f(u), n elements. y may equal u (in place).
template <typename T>
void activation_forward(T* y, const T* u, index_t n, ActivationParams<T> act);

// du = dy * f'(u), n elements. y = f(u) when the caller kept it (cheaper derivatives for
// sigmoid, tanh, elu), or nullptr to recompute it. du may equal dy (in place).
template <typename T>
void activation_backward(T* du, const T* dy, const T* u, const T* y, index_t n,
                         ActivationParams<T> act);

// Row-wise softmax of an m x n matrix, stable via the row maximum. p may equal u.
template <typename T>
void softmax_forward(T* p, const T* u, index_t m, index_t n);

// du = p * (dp - rowsum(dp * p)): the Jacobian-transpose product of softmax. du may equal dp.
template <typename T>
void softmax_backward(T* du, const T* dp, const T* p, index_t m, index_t n);

// Plain one-element-at-a-time twins of the above, the references for tests.
template <typename T>
void activation_forward_ref(T* y, const T* u, index_t n, ActivationParams<T> act);
template <typename T>
void activation_backward_ref(T* du, const T* dy, const T* u, index_t n, ActivationParams<T> act);

}  // namespace backprop
