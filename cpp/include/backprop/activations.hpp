// Elementwise activations and their derivatives, and the softmax used as an output.
#pragma once

#include <atomic>

#include "backprop/config.hpp"
#include "backprop/float_bits.hpp"

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

// Whether f(f(u)) = f(u) and f'(f(u)) = f'(u) for every u, NaN included: identity and relu
// (relu's derivative reads only the sign of u, which relu keeps; NaN goes to 0, whose
// derivative is 0 too). A layer's output X = f(U) then stands for U wherever U would be read,
// and a network keeps X alone (mlp.cpp, pre_activation).
bool output_serves_as_pre_activation(Activation kind);

// y = f(u), n elements. y may equal u (in place). When `largest` is set, each thread raises it
// to the largest magnitude it wrote (as bits with the sign cleared: float_bits.hpp), scanning
// its share of y right after writing it, while it is in cache.
template <typename T>
void activation_forward(T* y, const T* u, index_t n, ActivationParams<T> act,
                        std::atomic<FloatBits<T>>* largest = nullptr);

// du = dy * f'(u), n elements. y = f(u) when the caller kept it (cheaper derivatives for
// sigmoid, tanh, elu), or nullptr to recompute it. du may equal dy (in place).
template <typename T>
void activation_backward(T* du, const T* dy, const T* u, const T* y, index_t n,
                         ActivationParams<T> act);

// The two above on a rows x cols block of row-major matrices, on the calling thread, looked up
// once for one activation (and whether y is given): the GEMM's write-back calls them on each
// tile of its result while the tile is in cache. The forward one may work in place (y == u,
// ldy == ldu). The backward one works in place: du *= f'(u), with u and y (y = f(u), or
// nullptr) of leading dimension ld.
template <typename T>
using ForwardTileFn = void (*)(T* y, index_t ldy, const T* u, index_t ldu, index_t rows,
                               index_t cols, T alpha);
template <typename T>
using BackwardTileFn = void (*)(T* du, index_t ldd, const T* u, const T* y, index_t ld,
                                index_t rows, index_t cols, T alpha);
template <typename T>
ForwardTileFn<T> forward_tile_function(Activation kind);
template <typename T>
BackwardTileFn<T> backward_tile_function(Activation kind, bool has_y);

// Row-wise softmax of an m x n matrix, stable via the row maximum. p may equal u.
template <typename T>
void softmax_forward(T* p, const T* u, index_t m, index_t n);

// du = p * (dp - rowsum(dp * p)): the Jacobian-transpose product of softmax. du may equal dp.
template <typename T>
void softmax_backward(T* du, const T* dp, const T* p, index_t m, index_t n);

// Plain one-element-at-a-time twins of the above, with libm's exp, expm1, log1p and tanh where
// the kernels use their own (branch_free_math.hpp): the references for tests and benchmarks.
template <typename T>
void activation_forward_ref(T* y, const T* u, index_t n, ActivationParams<T> act);
template <typename T>
void activation_backward_ref(T* du, const T* dy, const T* u, index_t n, ActivationParams<T> act);
template <typename T>
void softmax_forward_ref(T* p, const T* u, index_t m, index_t n);

}  // namespace backprop
