// Activation forward and derivative kernels, and the row-wise softmax.
#include "backprop/activations.hpp"
#include "backprop/branch_free_math.hpp"
#include "backprop/checks.hpp"
#include "backprop/threads.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace backprop {
namespace {

// The transcendental functions the activations need. The kernels take the branch-free ones,
// which vectorize; the reference twins take libm's.
struct BranchFreeMath {
  template <typename T>
  BACKPROP_ALWAYS_INLINE static T expm1_nonpositive(T u) {
    return branch_free::expm1_nonpositive(u);
  }
  template <typename T>
  BACKPROP_ALWAYS_INLINE static T tanh(T u) { return branch_free::tanh(u); }
  template <typename T>
  BACKPROP_ALWAYS_INLINE static T sigmoid(T u) { return branch_free::sigmoid(u); }
  template <typename T>
  BACKPROP_ALWAYS_INLINE static T softplus(T u) { return branch_free::softplus(u); }
  template <typename T>
  BACKPROP_ALWAYS_INLINE static branch_free::Normal<T> normal(T u) {
    return branch_free::normal(u);
  }
  template <typename T>
  BACKPROP_ALWAYS_INLINE static T gaussian(T u) { return branch_free::gaussian(u); }
};

struct LibmMath {
  template <typename T>
  static T expm1_nonpositive(T u) { return std::expm1(u); }
  template <typename T>
  static T tanh(T u) { return std::tanh(u); }
  // Stable for large |u|: exp is only ever taken of a non-positive number.
  template <typename T>
  static T sigmoid(T u) {
    if (u >= T(0)) return T(1) / (T(1) + std::exp(-u));
    const T e = std::exp(u);
    return e / (T(1) + e);
  }
  template <typename T>
  static T softplus(T u) { return (u > T(0) ? u : T(0)) + std::log1p(std::exp(-std::fabs(u))); }
  // Phi through erfc, which keeps its digits in the lower tail, where 1 + erf(u / sqrt 2)
  // cancels (float gelu(-5) came out 4% off that way, gelu(-6) as 0).
  template <typename T>
  static branch_free::Normal<T> normal(T u) {
    return {T(0.5) * std::erfc(-u * branch_free::kInvSqrt2<T>),
            branch_free::kInvSqrt2Pi<T> * gaussian(u)};
  }
  template <typename T>
  static T gaussian(T u) { return std::exp(T(-0.5) * u * u); }
};

template <typename Math, typename T>
BACKPROP_ALWAYS_INLINE T apply(Activation kind, T alpha, T u) {
  switch (kind) {
    case Activation::identity:
      return u;
    case Activation::sigmoid:
      return Math::sigmoid(u);
    case Activation::tanh:
      return Math::tanh(u);
    case Activation::relu:
      return u > T(0) ? u : T(0);
    case Activation::leaky_relu:
      return u > T(0) ? u : alpha * u;
    case Activation::elu:
      return u > T(0) ? u : alpha * Math::expm1_nonpositive(u);
    case Activation::softplus:
      return Math::softplus(u);
    case Activation::gelu: {
      // u Phi(u) -> 0 as u -> -inf, where the product would be -inf * 0.
      const T cdf = Math::normal(u).cdf;
      return cdf == T(0) ? T(0) : u * cdf;
    }
  }
  return u;
}

// f'(u), using y = f(u) where that is cheaper.
template <typename Math, typename T>
BACKPROP_ALWAYS_INLINE T derivative(Activation kind, T alpha, T u, T y) {
  switch (kind) {
    case Activation::identity:
      return T(1);
    case Activation::sigmoid:
      return y * (T(1) - y);
    case Activation::tanh:
      return T(1) - y * y;
    case Activation::relu:
      return u > T(0) ? T(1) : T(0);
    case Activation::leaky_relu:
      return u > T(0) ? T(1) : alpha;
    case Activation::elu:
      return u > T(0) ? T(1) : y + alpha;
    case Activation::softplus:
      return Math::sigmoid(u);
    case Activation::gelu: {
      // Phi(u) + u phi(u), with Phi = y / u from the forward's y (Phi costs three times what
      // phi does): 1/2 where Phi rounds to it (and y / u would lose digits), 1 at +inf. u phi
      // -> 0 as |u| -> inf, where the product would be inf * 0.
      const T cdf = std::fabs(u) < std::numeric_limits<T>::epsilon() * T(0.25) ? T(0.5)
                    : u == std::numeric_limits<T>::infinity()                  ? T(1)
                                                                               : y / u;
      const T pdf = branch_free::kInvSqrt2Pi<T> * Math::gaussian(u);
      return cdf + (pdf == T(0) ? T(0) : u * pdf);
    }
  }
  return T(1);
}

// One loop per activation kind, so the switch is hoisted out of the element loop; restrict
// pointers and the AVX2 clone let them vectorize. Each loop covers one thread's share of the
// elements (for_each_share). The row loops must be inlined into the cloned functions below:
// left out of line (as GCC chose for gelu's long body), they ran as baseline code.

// y = f(u). InPlace: y holds u on entry, and u is not read.
template <typename T, Activation K, bool InPlace>
BACKPROP_ALWAYS_INLINE void forward_row(T* __restrict y, const T* __restrict u, index_t n,
                                        T alpha) {
#pragma GCC unroll 1
  for (index_t i = 0; i < n; ++i) y[i] = apply<BranchFreeMath, T>(K, alpha, InPlace ? y[i] : u[i]);
}

// du = dy * f'(u). InPlace: du holds dy on entry (the engine's delta), and dy is not read.
// HasY: y = f(u) is given, else recomputed.
template <typename T, Activation K, bool InPlace, bool HasY>
BACKPROP_ALWAYS_INLINE void backward_row(T* __restrict du, const T* __restrict dy,
                                         const T* __restrict u, const T* __restrict y, index_t n,
                                         T alpha) {
#pragma GCC unroll 1
  for (index_t i = 0; i < n; ++i) {
    const T yi = HasY ? y[i] : apply<BranchFreeMath, T>(K, alpha, u[i]);
    const T upstream = InPlace ? du[i] : dy[i];
    du[i] = upstream * derivative<BranchFreeMath, T>(K, alpha, u[i], yi);
  }
}

template <typename T, Activation K, bool InPlace>
BACKPROP_ELEMENTWISE_CLONES void forward_range(T* y, const T* u, index_t n, T alpha) {
  forward_row<T, K, InPlace>(y, u, n, alpha);
}

template <typename T, Activation K, bool InPlace, bool HasY>
BACKPROP_ELEMENTWISE_CLONES void backward_range(T* du, const T* dy, const T* u, const T* y,
                                                index_t n, T alpha) {
  backward_row<T, K, InPlace, HasY>(du, dy, u, y, n, alpha);
}

// The row loops above on a rows x cols block of row-major matrices: one call per block of C a
// GEMM's epilogue takes (a register tile, or a column of them: gemm.cpp, gemm_team).
// Tiles a whole register tile wide (either path's NR) take rows of fixed length: a loop of
// unknown length, set up anew on each short row, made the fused 64 x 256 x 256 product 3%
// slower than the plain one, against 0.3% this way. (`unroll 1` above keeps GCC from unrolling
// a fixed-length row into branchy scalar code instead of vectorizing it: 7x slower for relu's
// derivative.)
template <typename T, typename Row>
BACKPROP_ALWAYS_INLINE void for_each_tile_row(index_t rows, index_t cols, Row row) {
  constexpr index_t narrow = GemmBlocking<T>::NR, wide = GemmBlocking512<T>::NR;
  if (cols == narrow) {
    for (index_t i = 0; i < rows; ++i) row(i, narrow);
  } else if (cols == wide) {
    for (index_t i = 0; i < rows; ++i) row(i, wide);
  } else {
    for (index_t i = 0; i < rows; ++i) row(i, cols);
  }
}

template <typename T, Activation K>
BACKPROP_ELEMENTWISE_CLONES void forward_tile(T* y, index_t ldy, const T* u, index_t ldu,
                                              index_t rows, index_t cols, T alpha) {
  if (y == u && ldy == ldu) {
    for_each_tile_row<T>(rows, cols, [&](index_t i, index_t width) BACKPROP_LAMBDA_ALWAYS_INLINE {
      forward_row<T, K, true>(y + i * ldy, nullptr, width, alpha);
    });
    return;
  }
  for_each_tile_row<T>(rows, cols, [&](index_t i, index_t width) BACKPROP_LAMBDA_ALWAYS_INLINE {
    forward_row<T, K, false>(y + i * ldy, u + i * ldu, width, alpha);
  });
}

template <typename T, Activation K, bool HasY>
BACKPROP_ELEMENTWISE_CLONES void backward_tile(T* du, index_t ldd, const T* u, const T* y,
                                               index_t ld, index_t rows, index_t cols, T alpha) {
  for_each_tile_row<T>(rows, cols, [&](index_t i, index_t width) BACKPROP_LAMBDA_ALWAYS_INLINE {
    backward_row<T, K, true, HasY>(du + i * ldd, nullptr, u + i * ld, HasY ? y + i * ld : nullptr,
                                   width, alpha);
  });
}

template <typename T, Activation K, bool InPlace>
void forward_blocks(T* y, const T* u, index_t n, T alpha, std::atomic<FloatBits<T>>* largest) {
  for_each_share(n, true, [&](index_t first, index_t count) {
    forward_range<T, K, InPlace>(y + first, InPlace ? nullptr : u + first, count, alpha);
    if (largest != nullptr) raise_to(*largest, largest_magnitude_bits(y + first, count, 1, count));
  });
}

// y either is u (in place) or does not overlap it.
template <typename T, Activation K>
void forward_loop(T* y, const T* u, index_t n, T alpha, std::atomic<FloatBits<T>>* largest) {
  if (y == u) return forward_blocks<T, K, true>(y, u, n, alpha, largest);
  forward_blocks<T, K, false>(y, u, n, alpha, largest);
}

template <typename T, Activation K, bool InPlace, bool HasY>
void backward_blocks(T* du, const T* dy, const T* u, const T* y, index_t n, T alpha) {
  for_each_share(n, true, [&](index_t first, index_t count) {
    backward_range<T, K, InPlace, HasY>(du + first, InPlace ? nullptr : dy + first, u + first,
                                        HasY ? y + first : nullptr, count, alpha);
  });
}

// du either is dy (in place) or does not overlap it; y may be null.
template <typename T, Activation K>
void backward_loop(T* du, const T* dy, const T* u, const T* y, index_t n, T alpha) {
  const bool in_place = du == dy;
  if (in_place && y != nullptr) return backward_blocks<T, K, true, true>(du, dy, u, y, n, alpha);
  if (in_place) return backward_blocks<T, K, true, false>(du, dy, u, y, n, alpha);
  if (y != nullptr) return backward_blocks<T, K, false, true>(du, dy, u, y, n, alpha);
  backward_blocks<T, K, false, false>(du, dy, u, y, n, alpha);
}

template <typename T, template <typename, Activation> class Loop, typename... Args>
void dispatch(Activation kind, Args... args) {
  switch (kind) {
    case Activation::identity:
      return Loop<T, Activation::identity>::run(args...);
    case Activation::sigmoid:
      return Loop<T, Activation::sigmoid>::run(args...);
    case Activation::tanh:
      return Loop<T, Activation::tanh>::run(args...);
    case Activation::relu:
      return Loop<T, Activation::relu>::run(args...);
    case Activation::leaky_relu:
      return Loop<T, Activation::leaky_relu>::run(args...);
    case Activation::elu:
      return Loop<T, Activation::elu>::run(args...);
    case Activation::softplus:
      return Loop<T, Activation::softplus>::run(args...);
    case Activation::gelu:
      return Loop<T, Activation::gelu>::run(args...);
  }
}

template <typename T, Activation K>
struct ForwardLoop {
  static void run(T* y, const T* u, index_t n, T alpha, std::atomic<FloatBits<T>>* largest) {
    forward_loop<T, K>(y, u, n, alpha, largest);
  }
};

template <typename T, Activation K>
struct BackwardLoop {
  static void run(T* du, const T* dy, const T* u, const T* y, index_t n, T alpha) {
    backward_loop<T, K>(du, dy, u, y, n, alpha);
  }
};

// The function for kind K, through the same switch as dispatch().
template <typename T, Activation K>
struct ForwardTileOf {
  static void run(ForwardTileFn<T>* out) { *out = forward_tile<T, K>; }
};

template <typename T, Activation K>
struct BackwardTileOf {
  static void run(BackwardTileFn<T>* out, bool has_y) {
    *out = has_y ? backward_tile<T, K, true> : backward_tile<T, K, false>;
  }
};

// One row of the softmax, in two loops: the exps vectorize, and the sum, kept in order, would
// stop them from vectorizing were it in the same loop. InPlace: out holds the row on entry.
template <typename T, bool InPlace>
BACKPROP_SHORT_ROW_CLONES void softmax_row(T* __restrict out, const T* __restrict u, index_t n) {
  const T* row = InPlace ? out : u;
  T top = row[0];
  for (index_t j = 1; j < n; ++j) top = row[j] > top ? row[j] : top;
  for (index_t j = 0; j < n; ++j)
    out[j] = branch_free::exp_nonpositive((InPlace ? out[j] : u[j]) - top);
  T total = T(0);
  for (index_t j = 0; j < n; ++j) total += out[j];
  for (index_t j = 0; j < n; ++j) out[j] /= total;
}

}  // namespace

bool output_serves_as_pre_activation(Activation kind) {
  return kind == Activation::identity || kind == Activation::relu;
}

template <typename T>
T default_activation_alpha(Activation kind) {
  if (kind == Activation::leaky_relu) return T(0.01);
  if (kind == Activation::elu) return T(1);
  return T(0);
}

template <typename T>
void activation_forward(T* y, const T* u, index_t n, ActivationParams<T> act,
                        std::atomic<FloatBits<T>>* largest) {
  // y (n) = f(u (n))
  dispatch<T, ForwardLoop>(act.kind, y, u, n, act.alpha, largest);
}

template <typename T>
void activation_backward(T* du, const T* dy, const T* u, const T* y, index_t n,
                         ActivationParams<T> act) {
  // du (n) = dy (n) * f'(u (n))
  dispatch<T, BackwardLoop>(act.kind, du, dy, u, y, n, act.alpha);
}

template <typename T>
ForwardTileFn<T> forward_tile_function(Activation kind) {
  ForwardTileFn<T> chosen = nullptr;
  dispatch<T, ForwardTileOf>(kind, &chosen);
  return chosen;
}

template <typename T>
BackwardTileFn<T> backward_tile_function(Activation kind, bool has_y) {
  BackwardTileFn<T> chosen = nullptr;
  dispatch<T, BackwardTileOf>(kind, &chosen, has_y);
  return chosen;
}

template <typename T>
void activation_forward_ref(T* y, const T* u, index_t n, ActivationParams<T> act) {
  for (index_t i = 0; i < n; ++i) y[i] = apply<LibmMath, T>(act.kind, act.alpha, u[i]);
}

template <typename T>
void activation_backward_ref(T* du, const T* dy, const T* u, index_t n, ActivationParams<T> act) {
  for (index_t i = 0; i < n; ++i)
    du[i] = dy[i] * derivative<LibmMath, T>(act.kind, act.alpha, u[i],
                                           apply<LibmMath, T>(act.kind, act.alpha, u[i]));
}

template <typename T>
void softmax_forward(T* p, const T* u, index_t m, index_t n) {
  // p (m x n) = exp(u - rowmax) / rowsum
  if (n == 0) return;  // rows without columns have nothing to read
  const bool in_place = p == u;
  parallel_for(m, m * n >= kElementwiseParallelMin, [&](index_t i) {
    if (in_place) return softmax_row<T, true>(p + i * n, nullptr, n);
    softmax_row<T, false>(p + i * n, u + i * n, n);
  });
}

template <typename T>
void softmax_forward_ref(T* p, const T* u, index_t m, index_t n) {
  for (index_t i = 0; i < m; ++i) {
    const T* row = u + i * n;
    T* out = p + i * n;
    T top = n > 0 ? row[0] : T(0);
    for (index_t j = 1; j < n; ++j) top = row[j] > top ? row[j] : top;
    T total = T(0);
    for (index_t j = 0; j < n; ++j) total += out[j] = std::exp(row[j] - top);
    for (index_t j = 0; j < n; ++j) out[j] /= total;
  }
}

template <typename T>
void softmax_backward(T* du, const T* dp, const T* p, index_t m, index_t n) {
  // du (m x n) = p * (dp - rowsum(dp * p))
  parallel_for(m, m * n >= kElementwiseParallelMin, [&](index_t i) {
    const T* g = dp + i * n;
    const T* pr = p + i * n;
    T dot = T(0);
    for (index_t j = 0; j < n; ++j) dot += g[j] * pr[j];
    T* out = du + i * n;
    for (index_t j = 0; j < n; ++j) out[j] = pr[j] * (g[j] - dot);
  });
}

#define BACKPROP_INSTANTIATE_ACTIVATIONS(T)                                                   \
  template T default_activation_alpha<T>(Activation);                                         \
  template void activation_forward<T>(T*, const T*, index_t, ActivationParams<T>,              \
                                      std::atomic<FloatBits<T>>*);                            \
  template void activation_backward<T>(T*, const T*, const T*, const T*, index_t,             \
                                       ActivationParams<T>);                                  \
  template ForwardTileFn<T> forward_tile_function<T>(Activation);                              \
  template BackwardTileFn<T> backward_tile_function<T>(Activation, bool);                      \
  template void activation_forward_ref<T>(T*, const T*, index_t, ActivationParams<T>);        \
  template void activation_backward_ref<T>(T*, const T*, const T*, index_t,                   \
                                           ActivationParams<T>);                              \
  template void softmax_forward<T>(T*, const T*, index_t, index_t);                           \
  template void softmax_forward_ref<T>(T*, const T*, index_t, index_t);                       \
  template void softmax_backward<T>(T*, const T*, const T*, index_t, index_t);
BACKPROP_INSTANTIATE_ACTIVATIONS(float)
BACKPROP_INSTANTIATE_ACTIVATIONS(double)
#undef BACKPROP_INSTANTIATE_ACTIVATIONS

}  // namespace backprop
