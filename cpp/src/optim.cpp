// Optimizer updates: one loop over the flat parameter buffer and its state.
#include "backprop/optim.hpp"
#include "backprop/threads.hpp"

#include <stdexcept>

namespace backprop {

template <typename T>
void sgd_update(T* params, const T* grads, T* velocity, index_t n, const OptimizerSpec& spec) {
  // params (n) -= lr * step(grads (n), velocity (n))
  const T lr = T(spec.lr), mu = T(spec.momentum), wd = T(spec.weight_decay);
  const bool nesterov = spec.nesterov;
  if (mu == T(0)) {
#pragma omp parallel for schedule(static) num_threads(get_num_threads()) if (n >= kElementwiseParallelMin)
    for (index_t i = 0; i < n; ++i) params[i] -= lr * (grads[i] + wd * params[i]);
    return;
  }
#pragma omp parallel for schedule(static) num_threads(get_num_threads()) if (n >= kElementwiseParallelMin)
  for (index_t i = 0; i < n; ++i) {
    const T g = grads[i] + wd * params[i];
    const T v = mu * velocity[i] + g;
    velocity[i] = v;
    params[i] -= lr * (nesterov ? g + mu * v : v);
  }
}

template <typename T>
void sgd_update_ref(T* params, const T* grads, T* velocity, index_t n, const OptimizerSpec& spec) {
  for (index_t i = 0; i < n; ++i) {
    T g = grads[i] + T(spec.weight_decay) * params[i];
    if (spec.momentum != 0.0) {
      velocity[i] = T(spec.momentum) * velocity[i] + g;
      g = spec.nesterov ? g + T(spec.momentum) * velocity[i] : velocity[i];
    }
    params[i] -= T(spec.lr) * g;
  }
}

int optimizer_state_count(const OptimizerSpec& spec) {
  switch (spec.kind) {
    case OptimizerKind::sgd:
      return spec.momentum != 0.0 ? 1 : 0;
  }
  return 0;
}

template <typename T>
void optimizer_step(T* params, const T* grads, T* const* state, index_t n,
                    const OptimizerSpec& spec) {
  switch (spec.kind) {
    case OptimizerKind::sgd:
      sgd_update(params, grads, spec.momentum != 0.0 ? state[0] : nullptr, n, spec);
      return;
  }
  throw std::invalid_argument("unknown optimizer kind");
}

#define BACKPROP_INSTANTIATE_OPTIM(T)                                                         \
  template void sgd_update<T>(T*, const T*, T*, index_t, const OptimizerSpec&);               \
  template void sgd_update_ref<T>(T*, const T*, T*, index_t, const OptimizerSpec&);           \
  template void optimizer_step<T>(T*, const T*, T* const*, index_t, const OptimizerSpec&);
BACKPROP_INSTANTIATE_OPTIM(float)
BACKPROP_INSTANTIATE_OPTIM(double)
#undef BACKPROP_INSTANTIATE_OPTIM

}  // namespace backprop
