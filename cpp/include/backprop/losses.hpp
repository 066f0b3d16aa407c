// Losses over a batch, and their gradients with respect to the output layer's pre-activation.
#pragma once

#include "backprop/activations.hpp"
#include "backprop/config.hpp"

namespace backprop {

enum class Loss : int {
  mse = 0,                   // per sample 0.5 * ||y_hat - y||^2
  binary_cross_entropy = 1,  // from logits, the output is sigmoid(u)
  cross_entropy = 2,         // softmax cross-entropy from logits, by log-sum-exp
};

enum class Reduction : int { mean = 0, sum = 1 };

// What the output layer applies to its pre-activation U: an elementwise activation, or a
// row-wise softmax.
template <typename T>
struct OutputSpec {
  bool softmax = false;
  ActivationParams<T> act;  // used when softmax is false
};

// Turns the output pre-activation u (m x n) into the network's prediction y_hat (m x n).
template <typename T>
void output_forward(T* y_hat, const T* u, index_t m, index_t n, const OutputSpec<T>& out);

// Loss of predictions against targets y (m x n, dense: one-hot or probabilities for
// cross_entropy, 0..1 for binary_cross_entropy, any value for mse), reduced over the batch.
// u is the output pre-activation, y_hat = output_forward(u). Computed in double.
// row_weight (m) scales each sample's loss, nullptr meaning 1; "mean" still divides by m
// (as Keras does), so weights express relative importance.
// cross_entropy needs a softmax output and binary_cross_entropy a sigmoid output.
template <typename T>
double loss_forward(Loss loss, Reduction reduction, const T* u, const T* y_hat, const T* y,
                    const T* row_weight, index_t m, index_t n, const OutputSpec<T>& out);

// d = dLoss/du (m x n): (y_hat - y) / m for the cross-entropies (times the row sum of y for soft
// cross_entropy targets), and the output's Jacobian-transpose times (y_hat - y) / m for mse.
// The / m is dropped for Reduction::sum; row i is scaled by row_weight[i]. d may not alias
// the inputs.
template <typename T>
void loss_backward(T* d, Loss loss, Reduction reduction, const T* u, const T* y_hat, const T* y,
                   const T* row_weight, index_t m, index_t n, const OutputSpec<T>& out);

// Column sums of d (m x n) added into db (n): the bias gradient. db may not overlap d.
template <typename T>
void bias_grad(T* db, const T* d, index_t m, index_t n);
// The same for n columns of a d whose rows are ld apart.
template <typename T>
void bias_grad_columns(T* db, const T* d, index_t m, index_t n, index_t ld);

// The accuracy count of a classifier. elementwise (binary_cross_entropy, possibly multi-label):
// the entries of y_hat and y on the same side of 0.5, out of m x n. Otherwise (cross_entropy):
// the rows whose largest y_hat and largest y fall in the same column, out of m.
template <typename T>
index_t count_correct(const T* y_hat, const T* y, index_t m, index_t n, bool elementwise);

}  // namespace backprop
