// Optimizer updates: per-element rules, each run as one loop over the flat parameter buffer.
#include "backprop/optim.hpp"

#include <cmath>
#include <stdexcept>

#include "backprop/threads.hpp"

namespace backprop {
namespace {

// Per-call constants of a rule, computed once in double and rounded to T.
template <typename T>
struct Rule {
  OptimizerKind kind;
  T lr, wd, mu, beta1, beta2, eps, alpha;
  T step_size, bc2_sqrt;  // adam: lr / (1 - beta1^t), sqrt(1 - beta2^t)
  T decay;                // adamw: 1 - lr * wd
  bool nesterov, centered;
  T* v0;  // the state buffers, in optimizer_state_count's order
  T* v1;
  T* v2;

  Rule(const OptimizerSpec& s, T* const* state)
      : kind(s.kind),
        lr(T(s.lr)),
        wd(T(s.weight_decay)),
        mu(T(s.momentum)),
        beta1(T(s.beta1)),
        beta2(T(s.beta2)),
        eps(T(s.eps)),
        alpha(T(s.alpha)),
        step_size(T(0)),
        bc2_sqrt(T(1)),
        decay(T(1)),
        nesterov(s.nesterov),
        centered(s.centered),
        v0(nullptr),
        v1(nullptr),
        v2(nullptr) {
    const int count = optimizer_state_count(s);
    v0 = count > 0 ? state[0] : nullptr;
    v1 = count > 1 ? state[1] : nullptr;
    v2 = count > 2 ? state[2] : nullptr;
    const double t = double(s.step + 1);
    if (kind == OptimizerKind::adam || kind == OptimizerKind::adamw) {
      step_size = T(s.lr / (1.0 - std::pow(s.beta1, t)));
      bc2_sqrt = T(std::sqrt(1.0 - std::pow(s.beta2, t)));
      if (kind == OptimizerKind::adamw) decay = T(1.0 - s.lr * s.weight_decay);
    }
    if (kind == OptimizerKind::adagrad) lr = T(s.lr / (1.0 + (t - 1.0) * s.lr_decay));
  }

  // Updates parameter i. The kind is a template argument so each loop is branch-free.
  template <OptimizerKind K>
  void apply(T* p, const T* grads, index_t i) const {
    T g = grads[i];
    switch (K) {
      case OptimizerKind::sgd: {
        g += wd * p[i];
        if (mu != T(0)) {
          v0[i] = mu * v0[i] + g;
          g = nesterov ? g + mu * v0[i] : v0[i];
        }
        p[i] -= lr * g;
        return;
      }
      case OptimizerKind::adam:
      case OptimizerKind::adamw: {
        if (K == OptimizerKind::adamw)
          p[i] *= decay;
        else
          g += wd * p[i];
        v0[i] += (T(1) - beta1) * (g - v0[i]);
        v1[i] = beta2 * v1[i] + (T(1) - beta2) * g * g;
        const T denom = std::sqrt(v1[i]) / bc2_sqrt + eps;
        p[i] -= step_size * v0[i] / denom;
        return;
      }
      case OptimizerKind::rmsprop: {
        g += wd * p[i];
        v0[i] = alpha * v0[i] + (T(1) - alpha) * g * g;
        T avg;
        if (centered) {
          T* grad_avg = mu != T(0) ? v2 : v1;
          grad_avg[i] += (T(1) - alpha) * (g - grad_avg[i]);
          avg = std::sqrt(v0[i] - grad_avg[i] * grad_avg[i]) + eps;
        } else {
          avg = std::sqrt(v0[i]) + eps;
        }
        if (mu != T(0)) {
          v1[i] = mu * v1[i] + g / avg;
          p[i] -= lr * v1[i];
        } else {
          p[i] -= lr * g / avg;
        }
        return;
      }
      case OptimizerKind::adagrad: {
        g += wd * p[i];
        v0[i] += g * g;
        p[i] -= lr * g / (std::sqrt(v0[i]) + eps);
        return;
      }
    }
  }
};

template <typename T, OptimizerKind K>
void update_loop(const Rule<T>& rule, T* params, const T* grads, index_t n, bool parallel) {
#pragma omp parallel for schedule(static) num_threads(get_num_threads()) if (parallel && n >= kElementwiseParallelMin)
  for (index_t i = 0; i < n; ++i) rule.template apply<K>(params, grads, i);
}

template <typename T>
void run_update(T* params, const T* grads, T* const* state, index_t n, const OptimizerSpec& spec,
                bool parallel) {
  const Rule<T> rule(spec, state);
  switch (spec.kind) {
    case OptimizerKind::sgd:
      return update_loop<T, OptimizerKind::sgd>(rule, params, grads, n, parallel);
    case OptimizerKind::adam:
      return update_loop<T, OptimizerKind::adam>(rule, params, grads, n, parallel);
    case OptimizerKind::adamw:
      return update_loop<T, OptimizerKind::adamw>(rule, params, grads, n, parallel);
    case OptimizerKind::rmsprop:
      return update_loop<T, OptimizerKind::rmsprop>(rule, params, grads, n, parallel);
    case OptimizerKind::adagrad:
      return update_loop<T, OptimizerKind::adagrad>(rule, params, grads, n, parallel);
  }
  throw std::invalid_argument("unknown optimizer kind");
}

}  // namespace

int optimizer_state_count(const OptimizerSpec& spec) {
  switch (spec.kind) {
    case OptimizerKind::sgd:
      return spec.momentum != 0.0 ? 1 : 0;
    case OptimizerKind::adam:
    case OptimizerKind::adamw:
      return 2;
    case OptimizerKind::rmsprop:
      return 1 + (spec.momentum != 0.0 ? 1 : 0) + (spec.centered ? 1 : 0);
    case OptimizerKind::adagrad:
      return 1;
  }
  return 0;
}

template <typename T>
void optimizer_step(T* params, const T* grads, T* const* state, index_t n,
                    const OptimizerSpec& spec) {
  // params (n) updated from grads (n) and state (count x n)
  run_update(params, grads, state, n, spec, true);
}

template <typename T>
void optimizer_step_ref(T* params, const T* grads, T* const* state, index_t n,
                        const OptimizerSpec& spec) {
  run_update(params, grads, state, n, spec, false);
}

template <typename T>
void sgd_update(T* params, const T* grads, T* velocity, index_t n, const OptimizerSpec& spec) {
  OptimizerSpec sgd = spec;
  sgd.kind = OptimizerKind::sgd;
  T* const state[3] = {velocity, nullptr, nullptr};  // sized for any kind, read up to count
  optimizer_step(params, grads, state, n, sgd);
}

#define BACKPROP_INSTANTIATE_OPTIM(T)                                                           \
  template void optimizer_step<T>(T*, const T*, T* const*, index_t, const OptimizerSpec&);      \
  template void optimizer_step_ref<T>(T*, const T*, T* const*, index_t, const OptimizerSpec&);  \
  template void sgd_update<T>(T*, const T*, T*, index_t, const OptimizerSpec&);
BACKPROP_INSTANTIATE_OPTIM(float)
BACKPROP_INSTANTIATE_OPTIM(double)
#undef BACKPROP_INSTANTIATE_OPTIM

}  // namespace backprop
