// Optimizer updates over a flat parameter buffer, with state buffers of the same layout.
#pragma once

#include "backprop/config.hpp"

namespace backprop {

enum class OptimizerKind : int { sgd = 0, adam = 1, adamw = 2, rmsprop = 3, adagrad = 4 };

// Hyper-parameters of one update, as torch.optim names them. Only the fields of the chosen kind
// are read. `step` counts the updates already made (Adam's bias correction, Adagrad's decay).
struct OptimizerSpec {
  OptimizerKind kind = OptimizerKind::sgd;
  double lr = 0.01;
  double momentum = 0.0;      // sgd, rmsprop
  bool nesterov = false;      // sgd
  double weight_decay = 0.0;  // L2 added to the gradient; decoupled (p *= 1 - lr wd) for adamw
  double beta1 = 0.9;         // adam, adamw
  double beta2 = 0.999;       // adam, adamw
  double eps = 1e-8;          // adam, adamw, rmsprop, adagrad
  double alpha = 0.99;        // rmsprop's smoothing constant
  bool centered = false;      // rmsprop
  double lr_decay = 0.0;      // adagrad
  index_t step = 0;
};

// How many state buffers (each the size of the parameters) a spec needs, in this order:
// sgd: velocity if momentum; adam/adamw: first and second moments; rmsprop: square average,
// then momentum buffer if momentum, then gradient average if centered; adagrad: squared sum.
int optimizer_state_count(const OptimizerSpec& spec);

// One update of n parameters from their gradients, as torch.optim defines each kind.
// state holds optimizer_state_count(spec) buffers of n elements, zero before the first step.
template <typename T>
void optimizer_step(T* params, const T* grads, T* const* state, index_t n,
                    const OptimizerSpec& spec);

// The same update one element after another on one thread: the twin the tests compare against.
template <typename T>
void optimizer_step_ref(T* params, const T* grads, T* const* state, index_t n,
                        const OptimizerSpec& spec);

// SGD alone (the NumPy-level kernel): velocity may be nullptr when momentum is 0.
template <typename T>
void sgd_update(T* params, const T* grads, T* velocity, index_t n, const OptimizerSpec& spec);

}  // namespace backprop
