// Output transforms, losses and their gradients, bias gradient and accuracy counting.
#include "backprop/losses.hpp"
#include "backprop/branch_free_math.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace backprop {
namespace {

// log(1 + exp(u)) without overflow.
inline double softplus(double u) { return (u > 0.0 ? u : 0.0) + std::log1p(std::exp(-std::fabs(u))); }

// The softmax cross-entropy's log-sum-exps are taken for several rows at once: their exps in one
// flat loop, which vectorizes where a row of 10 classes does not fill a vector, with
// branch_free's exp (within 3 units in the last place) in place of libm's call per value (a
// row's own loop of them, vectorized, was slower than libm's). The loss of 32 rows of 10
// classes, a C++ loop on one Zen 5 core: 2.17 -> 0.88 us (tiny's step takes 53 us on two
// threads); 128 rows 8.07 -> 4.96 us; 256 rows of 1024 1.42 -> 0.73 ms.
constexpr index_t kExpBlock = 512;     // values shifted, then exponentiated, in place
constexpr index_t kLogSumExpRows = 64;  // rows at a time, at most

BACKPROP_ELEMENTWISE_CLONES void exp_in_place(double* __restrict x, index_t n) {
  for (index_t i = 0; i < n; ++i) x[i] = branch_free::exp_nonpositive(x[i]);
}

// Rows of n values log_sum_exps takes at once: their values fit one block.
inline index_t log_sum_exp_rows(index_t n) {
  return n == 0 ? kLogSumExpRows : std::clamp(kExpBlock / n, index_t(1), kLogSumExpRows);
}

// lse[r] = log sum_j e^(u_rj) in double for `rows` rows of n (at most log_sum_exp_rows(n)), from
// the row's largest value (NaN or +Inf anywhere gives NaN; a -Inf adds 0, and a row of them
// gives NaN); each row's exps add up in order.
// An empty row gives 0: it is only ever multiplied by an empty sum of targets.
template <typename T>
void log_sum_exps(const T* u, index_t rows, index_t n, double* lse) {
  double values[kExpBlock];
  double total[kLogSumExpRows];
  for (index_t r = 0; r < rows; ++r) {
    const T* row = u + r * n;
    double top = n > 0 ? double(row[0]) : 0.0;
    for (index_t j = 1; j < n; ++j) top = double(row[j]) > top ? double(row[j]) : top;
    lse[r] = top;
    total[r] = n > 0 ? 0.0 : 1.0;
  }
  const index_t width = std::min(n, kExpBlock);  // all of a row when there are several
  for (index_t start = 0; start < n; start += width) {
    const index_t count = std::min(width, n - start);
    for (index_t r = 0; r < rows; ++r)
      for (index_t j = 0; j < count; ++j)
        values[r * count + j] = double(u[r * n + start + j]) - lse[r];
    exp_in_place(values, rows * count);
    for (index_t r = 0; r < rows; ++r)
      for (index_t j = 0; j < count; ++j) total[r] += values[r * count + j];
  }
  for (index_t r = 0; r < rows; ++r) lse[r] += std::log(total[r]);
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
  double lse[kLogSumExpRows];  // of the cross-entropy's rows from i - i % lse_rows on
  const index_t lse_rows = log_sum_exp_rows(n);
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
        if (i % lse_rows == 0) log_sum_exps(ur, std::min(lse_rows, m - i), n, lse);
        const double row_lse = lse[i % lse_rows];
        for (index_t j = 0; j < n; ++j) row += double(yr[j]) * (row_lse - double(ur[j]));
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
  // The first largest of each row, the largest values kept in registers and selects in place
  // of branches, which mispredicted: tiny's count (32 rows of 10) 0.91 -> 0.31 us a step,
  // mnist's (128 rows) 4.78 -> 1.14 us, two Zen 5 threads (long rows, where a branch seldom
  // changes its way, lose a little: 256 rows of 1024, one thread, 186 -> 229 us).
  for (index_t i = 0; i < m; ++i) {
    const T* p = y_hat + i * n;
    const T* t = y + i * n;
    index_t best_p = 0, best_t = 0;
    T top_p = p[0], top_t = t[0];
    for (index_t j = 1; j < n; ++j) {
      const bool higher_p = p[j] > top_p, higher_t = t[j] > top_t;
      best_p = higher_p ? j : best_p;
      top_p = higher_p ? p[j] : top_p;
      best_t = higher_t ? j : best_t;
      top_t = higher_t ? t[j] : top_t;
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
