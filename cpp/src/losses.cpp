// Output transforms, losses and their gradients, bias gradient and accuracy counting.
#include "backprop/losses.hpp"

#include <cmath>
#include <stdexcept>

namespace backprop {
namespace {

// log(1 + exp(u)) without overflow.
inline double softplus(double u) { return (u > 0.0 ? u : 0.0) + std::log1p(std::exp(-std::fabs(u))); }

template <typename T>
double row_log_sum_exp(const T* u, index_t n) {
  if (n == 0) return 0.0;  // only ever multiplied by an empty sum of targets
  double top = double(u[0]);
  for (index_t j = 1; j < n; ++j) top = double(u[j]) > top ? double(u[j]) : top;
  double total = 0.0;
  for (index_t j = 0; j < n; ++j) total += std::exp(double(u[j]) - top);
  return top + std::log(total);
}

}  // namespace

template <typename T>
void output_forward(T* y_hat, const T* u, index_t m, index_t n, const OutputSpec<T>& out) {
  // y_hat (m x n) = softmax(u) or f(u)
  if (out.softmax)
    softmax_forward(y_hat, u, m, n);
  else
    activation_forward(y_hat, u, m * n, out.act);
}

template <typename T>
double loss_forward(Loss loss, Reduction reduction, const T* u, const T* y_hat, const T* y,
                    const T* row_weight, index_t m, index_t n, const OutputSpec<T>& out) {
  // scalar = reduce over m rows of row_weight * the per-sample loss (summed over n outputs)
  if (loss == Loss::binary_cross_entropy && (out.softmax || out.act.kind != Activation::sigmoid))
    throw std::invalid_argument("binary_cross_entropy needs a sigmoid output");
  if (loss == Loss::cross_entropy && !out.softmax)
    throw std::invalid_argument("cross_entropy needs a softmax output");
  double total = 0.0;
  for (index_t i = 0; i < m; ++i) {
    const T* ur = u + i * n;
    const T* pr = y_hat + i * n;
    const T* yr = y + i * n;
    double row = 0.0;
    switch (loss) {
      case Loss::mse:
        for (index_t j = 0; j < n; ++j) {
          const double e = double(pr[j]) - double(yr[j]);
          row += 0.5 * e * e;
        }
        break;
      case Loss::binary_cross_entropy:
        // -[y log s(u) + (1-y) log(1-s(u))] = softplus(u) - y u
        for (index_t j = 0; j < n; ++j) row += softplus(double(ur[j])) - double(yr[j]) * double(ur[j]);
        break;
      case Loss::cross_entropy: {
        // -sum_j y_j log p_j = sum_j y_j (lse(u) - u_j)
        const double lse = row_log_sum_exp(ur, n);
        for (index_t j = 0; j < n; ++j) row += double(yr[j]) * (lse - double(ur[j]));
        break;
      }
    }
    total += row_weight != nullptr ? double(row_weight[i]) * row : row;
  }
  return reduction == Reduction::mean && m > 0 ? total / double(m) : total;
}

template <typename T>
void loss_backward(T* d, Loss loss, Reduction reduction, const T* u, const T* y_hat, const T* y,
                   const T* row_weight, index_t m, index_t n, const OutputSpec<T>& out) {
  // d (m x n) = dLoss/du
  const T batch_scale = reduction == Reduction::mean && m > 0 ? T(1) / T(m) : T(1);
  for (index_t i = 0; i < m; ++i) {
    const T scale = row_weight != nullptr ? batch_scale * row_weight[i] : batch_scale;
    const T* pr = y_hat + i * n;
    const T* yr = y + i * n;
    T* dr = d + i * n;
    if (loss == Loss::cross_entropy) {
      // p * sum(y) - y: the gradient for soft targets too; p - y for one-hot rows.
      T mass = T(0);
      for (index_t j = 0; j < n; ++j) mass += yr[j];
      for (index_t j = 0; j < n; ++j) dr[j] = (pr[j] * mass - yr[j]) * scale;
    } else {
      for (index_t j = 0; j < n; ++j) dr[j] = (pr[j] - yr[j]) * scale;
    }
  }
  if (loss != Loss::mse) return;  // the cross-entropies' output Jacobian is already folded in
  if (out.softmax)
    softmax_backward(d, d, y_hat, m, n);
  else
    activation_backward(d, d, u, y_hat, m * n, out.act);
}

template <typename T>
void bias_grad(T* db, const T* d, index_t m, index_t n) {
  bias_grad_columns(db, d, m, n, n);
}

// Cloned per instruction set (config.hpp): the baseline's 4-wide adds took 1.3% of deep's
// samples.
template <typename T>
BACKPROP_ELEMENTWISE_CLONES void bias_grad_columns(T* __restrict db, const T* __restrict d,
                                                   index_t m, index_t n, index_t ld) {
  // db (n) += sum over rows of d (m x n); row order fixed, so the sum is deterministic.
  for (index_t i = 0; i < m; ++i) {
    const T* row = d + i * ld;
    for (index_t j = 0; j < n; ++j) db[j] += row[j];
  }
}

template <typename T>
index_t count_correct(const T* y_hat, const T* y, index_t m, index_t n, bool elementwise) {
  index_t correct = 0;
  if (n == 0) return correct;
  if (elementwise) {
    for (index_t i = 0; i < m * n; ++i) correct += (y_hat[i] > T(0.5)) == (y[i] > T(0.5));
    return correct;
  }
  for (index_t i = 0; i < m; ++i) {
    const T* p = y_hat + i * n;
    const T* t = y + i * n;
    index_t best_p = 0, best_t = 0;
    for (index_t j = 1; j < n; ++j) {
      if (p[j] > p[best_p]) best_p = j;
      if (t[j] > t[best_t]) best_t = j;
    }
    correct += best_p == best_t;
  }
  return correct;
}

#define BACKPROP_INSTANTIATE_LOSSES(T)                                                        \
  template void output_forward<T>(T*, const T*, index_t, index_t, const OutputSpec<T>&);      \
  template double loss_forward<T>(Loss, Reduction, const T*, const T*, const T*, const T*,     \
                                  index_t, index_t, const OutputSpec<T>&);                    \
  template void loss_backward<T>(T*, Loss, Reduction, const T*, const T*, const T*, const T*,  \
                                 index_t, index_t, const OutputSpec<T>&);                     \
  template void bias_grad<T>(T*, const T*, index_t, index_t);                                 \
  template void bias_grad_columns<T>(T*, const T*, index_t, index_t, index_t);               \
  template index_t count_correct<T>(const T*, const T*, index_t, index_t, bool);
BACKPROP_INSTANTIATE_LOSSES(float)
BACKPROP_INSTANTIATE_LOSSES(double)
#undef BACKPROP_INSTANTIATE_LOSSES

}  // namespace backprop
