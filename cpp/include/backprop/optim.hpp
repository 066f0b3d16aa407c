// Optimizer updates over a flat parameter buffer, with state buffers of the same layout.
#pragma once

#include "backprop/config.hpp"

namespace backprop {

enum class OptimizerKind : int { sgd = 0 };

// Hyper-parameters of one update. Only the fields of the chosen kind are read.
struct OptimizerSpec {
  OptimizerKind kind = OptimizerKind::sgd;
  double lr = 0.01;
  double momentum = 0.0;
  bool nesterov = false;
  double weight_decay = 0.0;  // L2, added to the gradient as in torch.optim.SGD
};

// SGD as torch.optim.SGD (dampening 0): g = grad + wd * p; v = mu * v + g;
// p -= lr * (g + mu * v) with Nesterov, p -= lr * v without; plain p -= lr * g when mu == 0
// (velocity is then untouched and may be nullptr).
template <typename T>
void sgd_update(T* params, const T* grads, T* velocity, index_t n, const OptimizerSpec& spec);

template <typename T>
void sgd_update_ref(T* params, const T* grads, T* velocity, index_t n, const OptimizerSpec& spec);

// The update the spec names, on n parameters; state holds the kind's state buffers.
template <typename T>
void optimizer_step(T* params, const T* grads, T* const* state, index_t n,
                    const OptimizerSpec& spec);

// How many state buffers (each of n elements) a kind keeps.
int optimizer_state_count(const OptimizerSpec& spec);

}  // namespace backprop
