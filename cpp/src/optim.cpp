// Optimizer updates: per-element rules, each run as one loop over the flat parameter buffer.
#include "backprop/optim.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>
#include <stdexcept>

#if __has_include(<unistd.h>)
#include <unistd.h>
#endif

#include "backprop/float_bits.hpp"
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
  T eta_minus, eta_plus, step_min, step_max;  // rprop
  T growth, shrink;       // quickprop: max_growth and max_growth / (1 + max_growth)
  bool first;             // the first update: no previous slope yet
  T grad_scale, clip_limit, l1;  // gradient clipping (+inf: off) and L1, applied before the rule
  bool nesterov, centered;
  bool momentum_on;       // decided in double: a tiny momentum may round to 0 in float
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
        eta_minus(T(s.eta_minus)),
        eta_plus(T(s.eta_plus)),
        step_min(T(s.step_min)),
        step_max(T(s.step_max)),
        growth(T(s.max_growth)),
        shrink(T(s.max_growth / (1.0 + s.max_growth))),
        first(s.step == 0),
        grad_scale(T(1)),
        clip_limit(s.clip_value > 0.0 ? T(s.clip_value) : std::numeric_limits<T>::infinity()),
        l1(T(s.l1)),
        nesterov(s.nesterov),
        centered(s.centered),
        momentum_on(s.momentum != 0.0),
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

  // Whether the gradient is scaled, clipped or gets L1 before the rule (else those steps are
  // compiled out).
  bool shapes_gradient() const {
    return grad_scale != T(1) || clip_limit != std::numeric_limits<T>::infinity() || l1 != T(0);
  }

  // The new value of parameter i and of its state, in locals; written back only when Write,
  // so a first pass can check that an update is finite before any of it is made. The kind,
  // the state count and whether the gradient is shaped are template arguments, so the loop
  // around this has no branch and vectorizes.
  template <OptimizerKind K, int States, bool Shaped, bool Write>
  bool apply(T* __restrict params, const T* __restrict grads, T* __restrict s0,
             T* __restrict s1, T* __restrict s2, index_t i) const {
    T g = grads[i];
    T p = params[i];
    if (Shaped) {
      // Clamping to +-inf (clip_value off) and adding 0 * sign (l1 off) change nothing.
      g *= grad_scale;
      g = std::min(std::max(g, -clip_limit), clip_limit);
      g += l1 * (T(p > T(0)) - T(p < T(0)));
    }
    T a = States > 0 ? s0[i] : T(0);  // the state values this kind keeps
    T b = States > 1 ? s1[i] : T(0);
    T c = States > 2 ? s2[i] : T(0);
    switch (K) {
      case OptimizerKind::sgd: {
        g += wd * p;
        if (momentum_on) {
          a = mu * a + g;
          g = nesterov ? g + mu * a : a;
        }
        p -= lr * g;
        break;
      }
      case OptimizerKind::adam:
      case OptimizerKind::adamw: {
        if (K == OptimizerKind::adamw)
          p *= decay;
        else
          g += wd * p;
        a += (T(1) - beta1) * (g - a);
        b = beta2 * b + (T(1) - beta2) * g * g;
        p -= step_size * a / (std::sqrt(b) / bc2_sqrt + eps);
        break;
      }
      case OptimizerKind::rmsprop: {
        // States is 1 + momentum + centered. With 2, which of the two is on is known only at
        // run time: both are computed and selected, so the loop still has no branch and
        // vectorizes (it was 10x slower as a branch).
        const bool with_momentum = States == 3 || (States == 2 && momentum_on);
        const bool is_centered = States == 3 || (States == 2 && centered);
        g += wd * p;
        a = alpha * a + (T(1) - alpha) * g * g;
        // The gradient average (centered) is the last state: c after a momentum buffer, else b.
        T grad_avg = States == 3 ? c : b;
        grad_avg += (T(1) - alpha) * (g - grad_avg);
        const T avg = std::sqrt(is_centered ? a - grad_avg * grad_avg : a) + eps;
        const T velocity = mu * b + g / avg;
        p -= with_momentum ? lr * velocity : lr * g / avg;
        if (States == 3) {
          b = velocity;
          c = grad_avg;
        } else if (States == 2) {
          b = with_momentum ? velocity : grad_avg;
        }
        break;
      }
      case OptimizerKind::adagrad: {
        g += wd * p;
        a += g * g;
        p -= lr * g / (std::sqrt(a) + eps);
        break;
      }
      case OptimizerKind::rprop: {
        // a: previous gradient, b: step size (starts at lr). A sign change shrinks the step
        // and skips this update (iRPROP-); the same sign grows it.
        T size = first ? lr : b;
        const T agreement = g * a;
        if (agreement > T(0)) {
          size = size * eta_plus < step_max ? size * eta_plus : step_max;
        } else if (agreement < T(0)) {
          size = size * eta_minus > step_min ? size * eta_minus : step_min;
          g = T(0);
        }
        p -= g > T(0) ? size : (g < T(0) ? -size : T(0));
        a = g;
        b = size;
        break;
      }
      case OptimizerKind::quickprop: {
        // a: previous slope, b: previous step. Jump towards the minimum of the parabola
        // through the last two slopes, at most max_growth times the last step, adding a plain
        // gradient step while the slope keeps its sign.
        g += wd * p;
        T delta = T(0);
        if (b == T(0)) {
          delta = -lr * g;
        } else {
          const T direction = b > T(0) ? T(1) : T(-1);
          if (g * direction < T(0)) delta -= lr * g;  // still downhill along the last step
          if (g * direction < shrink * a * direction)
            delta += growth * b;
          else
            delta += g / (a - g) * b;
        }
        p += delta;
        a = g;
        b = delta;
        break;
      }
    }
    if (Write) {
      params[i] = p;
      if (States > 0) s0[i] = a;
      if (States > 1) s1[i] = b;
      if (States > 2) s2[i] = c;
    }
    // x - x is 0 for a finite x and NaN for Inf or NaN: one cheap, branch-free test of all four.
    return (p - p) + (a - a) + (b - b) + (c - c) == T(0);
  }
};

// The update over [begin, end), written when Write; 1 when any result is not finite, else 0.
// With Track (and Write), `written` (required then) gets the largest magnitudes written. The
// buffers never overlap (the bindings refuse aliases): restrict, and a local copy of the rule
// that no store can change, let the compiler keep the constants in registers. Cloned per
// instruction set and chosen at load time; contraction stays off, so all clones round alike.
template <typename T, OptimizerKind K, int States, bool Shaped, bool Write, bool Track = false>
BACKPROP_ELEMENTWISE_CLONES int update_range(const Rule<T>& shared_rule, T* __restrict params,
                                             const T* __restrict grads, index_t begin,
                                             index_t end,
                                             WrittenMagnitudes<T>* written = nullptr) {
  static_assert(Write || !Track, "only written values are tracked");
  const Rule<T> rule = shared_rule;
  T* __restrict s0 = rule.v0;
  T* __restrict s1 = rule.v1;
  T* __restrict s2 = rule.v2;
  int bad = 0;
  FloatBits<T> largest_p = 0, largest_0 = 0, largest_1 = 0, signs_1 = 0;
  for (index_t i = begin; i < end; ++i) {
    bad |= rule.template apply<K, States, Shaped, Write>(params, grads, s0, s1, s2, i) ? 0 : 1;
    if constexpr (Track) {
      // The values just stored, still in registers.
      largest_p = std::max(largest_p, magnitude_bits(params[i]));
      if constexpr (States > 0)
        largest_0 = std::max(largest_0, magnitude_bits(s0[i]));
      if constexpr (States > 1) {
        largest_1 = std::max(largest_1, magnitude_bits(s1[i]));
        signs_1 |= bits_of(s1[i]);
      }
    }
  }
  if constexpr (Track) {
    const bool negative_1 = (signs_1 & kSignBit<T>) != 0;  // unbounded, as measure_bounds says
    *written = {largest_p, largest_0, negative_1 ? kExponentBits<T> : largest_1};
  }
  return bad;
}

// What a scan of a buffer found: the largest magnitude's bits (each entry's bits with the sign
// cleared; non-negative floats order as their bits do, and Inf or NaN above every finite
// value), and the OR of the sign bits. Integer max and OR vectorize; a float max does not.
template <typename T>
struct MagnitudeScan {
  FloatBits<T> largest = 0;
  FloatBits<T> signs = 0;
};

// When `to_write` is set, its lines at the same positions are fetched for writing on the way
// (see warm_for_update).
template <typename T>
BACKPROP_ELEMENTWISE_CLONES MagnitudeScan<T> scan_magnitudes(const T* __restrict x,
                                                             index_t begin, index_t end,
                                                             T* to_write) {
  FloatBits<T> largest = 0, signs = 0;
  auto scan = [&](index_t first, index_t last) BACKPROP_LAMBDA_ALWAYS_INLINE {
    for (index_t i = first; i < last; ++i) {
      const FloatBits<T> bits = bits_of(x[i]);
      const FloatBits<T> magnitude = bits & ~kSignBit<T>;
      signs |= bits;
      largest = magnitude > largest ? magnitude : largest;
    }
  };
  index_t i = begin;
  if (to_write != nullptr) {
    constexpr index_t kLine = 64 / index_t(sizeof(T)), kBlock = 4 * kLine;
    for (; i + kBlock <= end; i += kBlock) {
      for (index_t line = i; line < i + kBlock; line += kLine)
        __builtin_prefetch(to_write + line, 1, 3);
      scan(i, i + kBlock);
    }
  }
  scan(i, end);
  return {largest, signs & kSignBit<T>};
}

// The order in which a thread visits its shares of the matrices (UpdateShares).
enum class MatrixOrder { first_to_last, last_to_first };

// Runs body(first, count) over [0, n) on the update's threads: for_each_share's contiguous
// shares, or each thread's share of the rows of every matrix in `shares` (UpdateShares), the
// matrices in `order`.
template <typename Body>
void for_each_update_share(index_t n, bool parallel, const UpdateShares& shares, Body&& body,
                           MatrixOrder order = MatrixOrder::first_to_last) {
  if (shares.count == 0) {
    for_each_share(n, parallel, body);
    return;
  }
  const TeamCall team(share_count(n, parallel), false);
  team.run([&](int part, int parts) {
    for (std::size_t visit = 0; visit < shares.count; ++visit) {
      const std::size_t i =
          order == MatrixOrder::first_to_last ? visit : shares.count - 1 - visit;
      const ParameterMatrix& matrix = shares.matrices[i];
      const Share rows(matrix.rows, part, parts);
      if (rows.first < rows.last)
        body(matrix.offset + rows.first * matrix.columns,
             (rows.last - rows.first) * matrix.columns);
    }
  });
}

// The largest |x|: +inf if an entry is not finite, or, when `nonnegative`, if one has its sign
// bit set (-0 too). Each thread fetches its share of `to_write`, if given, for writing: the
// share the update's writing pass gives it (`shares`).
template <typename T>
double largest_magnitude(const T* x, index_t n, bool parallel, bool nonnegative = false,
                         T* to_write = nullptr, const UpdateShares& shares = {}) {
  std::atomic<FloatBits<T>> largest{0}, signs{0};
  for_each_update_share(n, parallel, shares, [&](index_t first, index_t count) {
    const MagnitudeScan<T> scan = scan_magnitudes(x, first, first + count, to_write);
    signs.fetch_or(scan.signs, std::memory_order_relaxed);
    raise_to(largest, scan.largest);
  });
  if (nonnegative && signs.load(std::memory_order_relaxed) != 0)
    return std::numeric_limits<double>::infinity();
  return magnitude_from_bits<T>(largest.load(std::memory_order_relaxed));
}

// Bounds on an update's new values, from bounds on the old ones (|p| <= P, |state k| <= S[k])
// and |gradient| <= G. Each is the exact bound of the formula (clipping only shrinks a
// gradient, l1 adds at most |l1|) times a slack well above what rounding adds: at most
// (1 + 2^-24)^20 for a chain of 20 float operations, 1 + 1.2e-6; Adam's first moment, which
// cancels, gets its own rounding term. `finite` when every bound and intermediate is a number
// below a quarter of T's largest value: then no operation reaches Inf, and without Inf, a
// negative square root or a zero divisor, there is no NaN. An Inf among the inputs or the
// rule's constants makes some term Inf or NaN (inf * 0), and so refuses the proof.
struct NewBounds {
  bool finite = false;
  double params = 0.0;
  double state[2] = {0.0, 0.0};
};

template <typename T, OptimizerKind K>
NewBounds bounds_after(const Rule<T>& rule, double P, const double* S, double G) {
  constexpr double kSlack = 1.0 + 1e-5;
  constexpr double kRounding = double(std::numeric_limits<T>::epsilon());  // 2u
  auto mag = [](T value) { return std::abs(double(value)); };
  const double shaped = mag(rule.grad_scale) * G + mag(rule.l1);
  NewBounds next;
  std::array<double, 16> terms{};  // every bound and intermediate, to be finite and small
  if constexpr (K == OptimizerKind::sgd) {
    const double g = shaped + mag(rule.wd) * P;
    double step = g, v = 0.0;
    if (rule.momentum_on) {
      v = mag(rule.mu) * S[0] + g;
      step = rule.nesterov ? g + mag(rule.mu) * v : v;
    }
    next.params = P + mag(rule.lr) * step;
    next.state[0] = v;
    terms = {P, S[0], G, shaped, g, v, step, next.params};  // the rest stay 0
  } else if constexpr (K == OptimizerKind::adam || K == OptimizerKind::adamw) {
    // a += (1 - beta1)(g - a); b = beta2 b + (1 - beta2) g^2; p -= step_size a / (sqrt(b) /
    // bc2_sqrt + eps). b stays >= 0 (S[1] bounds a second moment measured non-negative), so
    // the divisor is at least eps.
    const bool decoupled = K == OptimizerKind::adamw;
    const double c1 = T(1) - rule.beta1, c2 = T(1) - rule.beta2;  // as the update rounds them
    if (!(rule.eps > T(0)) || !(rule.beta2 >= T(0)) || !(c2 >= 0.0)) return next;
    const double p0 = decoupled ? mag(rule.decay) * P : P;
    const double g = shaped + (decoupled ? 0.0 : mag(rule.wd) * P);
    // a + c1 (g - a): |1 - c1| S0 + |c1| g exactly; rounding g - a and the product costs up
    // to 2u |c1| (g + S0) more, which the slack alone does not cover when c1 is small.
    const double m = std::abs(1.0 - c1) * S[0] + std::abs(c1) * g +
                     2.0 * kRounding * std::abs(c1) * (g + S[0]);
    const double v = double(rule.beta2) * S[1] + c2 * g * g;
    const double root = std::sqrt(v) / double(rule.bc2_sqrt);
    const double step = mag(rule.step_size) * m / double(rule.eps);
    next.params = p0 + step;
    next.state[0] = m;
    next.state[1] = v;
    terms = {P, S[0], S[1], G, shaped, p0, g, g + S[0], g * g, m, v, root,
             mag(rule.step_size) * m, step, next.params};  // the rest stay 0
  } else {
    return next;  // not bounded: always checked
  }
  const double limit = 0.25 * double(std::numeric_limits<T>::max());
  next.finite = std::all_of(terms.begin(), terms.end(),
                            [&](double term) { return term * kSlack <= limit; });  // NaN: false
  next.params *= kSlack;
  for (double& bound : next.state) bound *= kSlack;
  return next;
}

// How one update runs: on the threads (`parallel`) or on the calling one, the threads' shares,
// and what proves it finite without a check pass (optimizer_step).
struct UpdatePlan {
  bool parallel = true;
  UpdateShares shares{};
  UpdateBounds* bounds = nullptr;
  GradientBound gradient{};
  bool checked = false;  // every new value found finite already: the writing pass alone
};

// This core's L2 cache in bytes, or 0 where the system does not say.
long l2_cache_bytes() {
#ifdef _SC_LEVEL2_CACHE_SIZE
  static const long bytes = std::max(0L, sysconf(_SC_LEVEL2_CACHE_SIZE));
  return bytes;
#else
  return 0;
#endif
}

// Whether the proven update's scan of the gradient should fetch the weights for writing as it
// goes: for SGD, when the update runs on several threads and each thread's share of weights,
// gradients and state fits in half its L2 cache, so the lines are still there when the update
// writes them. The other threads' products have just read those weights; on a 2-vCPU Xeon
// (AVX-512, 2 MiB L2) tiny's update then wrote them so slowly that its epochs ran 12% slower on
// two threads than on one, and fetching them first gained 14-17% (bench/RESULTS.md). Off for
// larger shares, where the lines would be evicted before the write (mnist and deep lost
// 1-1.5%), on one thread, where the fetch only costs (7%), and for Adam, whose writing pass (a
// square root and a division per weight) lost 3% with it. Off too when the step's products read
// each weight on the thread that updates it (GradientBound::weights_read_in_own_shares): tiny's
// forward split by k blocks, its shuffled epochs on two Xeon threads ran 306k / 307k / 311k
// samples/s with the scan and 337k / 332k / 333k without (alternated medians). (Measured before
// epochs made their SGD updates early, in the backward pass, where they are proven: this now
// serves the updates proven after it.)
template <typename T, OptimizerKind K, int States>
bool warm_for_update(index_t n, bool parallel) {
  const int threads = share_count(n, parallel);
  if (K != OptimizerKind::sgd || threads < 2) return false;
  const double share_bytes = double(n) / threads * (2 + States) * double(sizeof(T));
  return share_bytes <= 0.5 * double(l2_cache_bytes());
}

// Moves the carried bounds past an update that `next` bounds.
inline void move_past(const NewBounds& next, UpdateBounds& bounds) {
  bounds.params = next.params;
  bounds.state[0] = next.state[0];
  bounds.state[1] = next.state[1];
}

// Measures the bounds (UpdateBounds) on the parameters and on the state an sgd, adam or adamw
// update reads; a second moment with a sign bit set counts as unbounded.
template <typename T, OptimizerKind K>
void measure_bounds(const Rule<T>& rule, const T* params, index_t n, bool parallel,
                    UpdateBounds& bounds) {
  constexpr bool adam_like = K == OptimizerKind::adam || K == OptimizerKind::adamw;
  bounds.params = largest_magnitude(params, n, parallel);
  bounds.state[0] = rule.v0 != nullptr ? largest_magnitude(rule.v0, n, parallel) : 0.0;
  bounds.state[1] = rule.v1 != nullptr ? largest_magnitude(rule.v1, n, parallel, adam_like) : 0.0;
  bounds.known = true;
}

// Whether bounds prove this update finite, moving them past it when they do (sgd, adam,
// adamw; the other kinds always check). The gradient's bound comes from `gradient` if that
// proves it, else from a scan of the gradient; but when the scan would fetch the weights for
// writing (warm_for_update), only the scan is used: without it tiny's epochs on two Xeon
// threads fell from 254k to 219k samples/s. Elsewhere the given bound saves the scan; epochs,
// samples/s, medians of four alternated rounds' medians: one thread, tiny 254.9k -> 265.2k,
// deep 37.4k -> 38.3k, mnist 40.2k -> 41.9k; two threads, deep 51.1k -> 52.2k, mnist 71.4k ->
// 73.0k, wide within the noise.
template <typename T, OptimizerKind K, int States>
bool proven_finite(const Rule<T>& rule, T* params, const T* grads, index_t n,
                   const UpdatePlan& plan) {
  const bool parallel = plan.parallel;
  UpdateBounds* const bounds = plan.bounds;
  const GradientBound& gradient = plan.gradient;
  constexpr bool adam_like = K == OptimizerKind::adam || K == OptimizerKind::adamw;
  if (bounds == nullptr || !(K == OptimizerKind::sgd || adam_like)) return false;
  if (!bounds->known) measure_bounds<T, K>(rule, params, n, parallel, *bounds);
  const bool warm =
      !gradient.weights_read_in_own_shares && warm_for_update<T, K, States>(n, parallel);
  NewBounds next;
  if (!warm && gradient.compute != nullptr) {
    next = bounds_after<T, K>(rule, bounds->params, bounds->state,
                              gradient.compute(gradient.context));
    if (next.finite) ++bounds->proven_unscanned;
  }
  if (!next.finite) {
    const double largest =
        largest_magnitude(grads, n, parallel, false, warm ? params : nullptr, plan.shares);
    next = bounds_after<T, K>(rule, bounds->params, bounds->state, largest);
  }
  if (!next.finite) {
    bounds->known = false;  // checked instead; measured again before the next update
    return false;
  }
  move_past(next, *bounds);
  ++bounds->proven;
  return true;
}

// Checks that the whole update is finite, then makes it: all or nothing. States is
// optimizer_state_count: how many of rule.v0, v1, v2 the update reads and writes. An update
// that bounds prove finite skips the check, as does one checked already (plan.checked).
// After a check pass over the matrices (UpdateShares) first to last, the writing pass visits
// them last to first: the matrices checked last are still in L2, where it finds them, and the
// first layer's weights, which the next forward pass reads first, are the last written. Per-call
// train_step (then checked in this pass; now, for sgd, adam and adamw without clip_norm, in its
// backward pass: train.cpp) on two Xeon threads, samples/s, six alternated rounds, first to
// last -> last to first: deep 48.7k-53.2k -> 50.0k-54.1k (faster in every round, by
// 1.6-6.3%), mnist 61.5k-65.7k -> 62.2k-66.9k (every round, by 0.2-5.1%); tiny (whose update
// fits in L2), wide and one thread within the noise. The bits are the same.
template <typename T, OptimizerKind K, int States, bool Shaped>
bool update_pass_pair(const Rule<T>& rule, T* params, const T* grads, index_t n,
                      const UpdatePlan& plan) {
  // One pass over every share, writing or not; true when a new value is not finite.
  auto pass = [&](auto write, MatrixOrder order) {
    std::atomic<bool> bad{false};
    for_each_update_share(
        n, plan.parallel, plan.shares,
        [&](index_t first, index_t count) {
          if (update_range<T, K, States, Shaped, decltype(write)::value>(rule, params, grads,
                                                                         first,
                                                                         first + count) != 0)
            bad.store(true, std::memory_order_relaxed);
        },
        order);
    return bad.load(std::memory_order_relaxed);
  };
  // A check pass first, unless the update was checked already or bounds prove it finite.
  const bool check_pass =
      !plan.checked && !proven_finite<T, K, States>(rule, params, grads, n, plan);
  if (check_pass && pass(std::false_type{}, MatrixOrder::first_to_last)) return false;
  // A check or a proof said finite: only a wrong one gets here. Say so, rather than leave NaN
  // or Inf in the weights unreported.
  if (pass(std::true_type{},
           check_pass ? MatrixOrder::last_to_first : MatrixOrder::first_to_last))
    throw std::logic_error("an optimizer update found finite was not; the weights are invalid");
  return true;
}

// The state counts each kind can have (optimizer_state_count), so no other is compiled.
constexpr bool valid_state_count(OptimizerKind kind, int states) {
  switch (kind) {
    case OptimizerKind::sgd:
      return states <= 1;
    case OptimizerKind::rmsprop:
      return states >= 1;
    case OptimizerKind::adagrad:
      return states == 1;
    default:
      return states == 2;
  }
}

template <typename T, OptimizerKind K, int States>
bool update_with_states(const Rule<T>& rule, T* params, const T* grads, index_t n,
                        const UpdatePlan& plan) {
  if constexpr (valid_state_count(K, States)) {
    return rule.shapes_gradient()
               ? update_pass_pair<T, K, States, true>(rule, params, grads, n, plan)
               : update_pass_pair<T, K, States, false>(rule, params, grads, n, plan);
  } else {
    throw std::logic_error("optimizer state count does not fit its kind");
  }
}

template <typename T, OptimizerKind K>
bool update_loop(const Rule<T>& rule, T* params, const T* grads, index_t n,
                 const UpdatePlan& plan) {
  switch ((rule.v0 != nullptr) + (rule.v1 != nullptr) + (rule.v2 != nullptr)) {
    case 0:
      return update_with_states<T, K, 0>(rule, params, grads, n, plan);
    case 1:
      return update_with_states<T, K, 1>(rule, params, grads, n, plan);
    case 2:
      return update_with_states<T, K, 2>(rule, params, grads, n, plan);
    default:
      return update_with_states<T, K, 3>(rule, params, grads, n, plan);
  }
}

template <typename T>
bool run_update(T* params, const T* grads, T* const* state, index_t n, const OptimizerSpec& spec,
                const UpdatePlan& plan) {
  UpdateBounds* const bounds = plan.bounds;
  Rule<T> rule(spec, state);
  if (spec.clip_norm > 0.0) {
    // As torch.nn.utils.clip_grad_norm_: scale by clip_norm / (norm + 1e-6) when that is < 1.
    const double norm = gradient_norm(grads, n);
    if (!std::isfinite(norm)) {
      if (bounds != nullptr) bounds->known = false;
      return false;
    }
    const double coefficient = spec.clip_norm / (norm + 1e-6);
    if (coefficient < 1.0) rule.grad_scale = T(coefficient);
  }
  switch (spec.kind) {
    case OptimizerKind::sgd:
      return update_loop<T, OptimizerKind::sgd>(rule, params, grads, n, plan);
    case OptimizerKind::adam:
      return update_loop<T, OptimizerKind::adam>(rule, params, grads, n, plan);
    case OptimizerKind::adamw:
      return update_loop<T, OptimizerKind::adamw>(rule, params, grads, n, plan);
    case OptimizerKind::rmsprop:
      return update_loop<T, OptimizerKind::rmsprop>(rule, params, grads, n, plan);
    case OptimizerKind::adagrad:
      return update_loop<T, OptimizerKind::adagrad>(rule, params, grads, n, plan);
    case OptimizerKind::rprop:
      return update_loop<T, OptimizerKind::rprop>(rule, params, grads, n, plan);
    case OptimizerKind::quickprop:
      return update_loop<T, OptimizerKind::quickprop>(rule, params, grads, n, plan);
  }
  throw std::invalid_argument("unknown optimizer kind");
}

// Whether EarlyUpdate takes an update of this spec piece by piece: sgd, adam and adamw, without
// clip_norm (whose scale needs the whole gradient).
bool taken_early(const OptimizerSpec& spec) {
  const bool kind = spec.kind == OptimizerKind::sgd || spec.kind == OptimizerKind::adam ||
                    spec.kind == OptimizerKind::adamw;
  return kind && spec.clip_norm <= 0.0;
}

// body(kind) with the kind, as a type, of an update taken_early takes.
template <typename Body>
auto with_early_kind(OptimizerKind kind, Body&& body) {
  using Sgd = std::integral_constant<OptimizerKind, OptimizerKind::sgd>;
  using Adam = std::integral_constant<OptimizerKind, OptimizerKind::adam>;
  using AdamW = std::integral_constant<OptimizerKind, OptimizerKind::adamw>;
  return kind == OptimizerKind::sgd    ? body(Sgd{})
         : kind == OptimizerKind::adam ? body(Adam{})
                                       : body(AdamW{});
}

// Throws std::logic_error unless the matrices tile [0, n) in order: no entry skipped or doubled.
void require_shares_tile(const UpdateShares& shares, index_t n) {
  index_t covered = 0;
  for (std::size_t i = 0; i < shares.count; ++i) {
    const ParameterMatrix& matrix = shares.matrices[i];
    if (matrix.offset != covered || matrix.rows < 0 || matrix.columns < 0)
      throw std::logic_error("the update's parameter matrices do not tile the buffer in order");
    covered += matrix.rows * matrix.columns;
  }
  if (shares.count > 0 && covered != n)
    throw std::logic_error("the update's parameter matrices do not cover the buffer");
}

// EarlyUpdate's writer (or, without Write, checker) of [first, end) for one kind, state count
// and gradient shaping; the writer tracks the largest magnitudes it writes.
template <typename T, OptimizerKind K, bool Write, int States, bool Shaped>
int take_early_range(const OptimizerSpec& spec, T* const* state, T* params, const T* grads,
                     index_t first, index_t end, WrittenMagnitudes<T>* written) {
  const Rule<T> rule(spec, state);  // a few roundings (and Adam's two powers) per piece
  return update_range<T, K, States, Shaped, Write, Write>(rule, params, grads, first, end,
                                                          written);
}

// The writer (or checker) for a rule's state count and shaping, or nullptr where the kind has
// no such count (valid_state_count).
template <typename T, OptimizerKind K, bool Write, int States>
auto early_taker(bool shaped) -> int (*)(const OptimizerSpec&, T* const*, T*, const T*,
                                         index_t, index_t, WrittenMagnitudes<T>*) {
  if constexpr (valid_state_count(K, States)) {
    return shaped ? &take_early_range<T, K, Write, States, true>
                  : &take_early_range<T, K, Write, States, false>;
  } else {
    return nullptr;
  }
}

template <typename T, OptimizerKind K, bool Write>
auto early_taker(const Rule<T>& rule) {
  switch ((rule.v0 != nullptr) + (rule.v1 != nullptr)) {
    case 0:
      return early_taker<T, K, Write, 0>(rule.shapes_gradient());
    case 1:
      return early_taker<T, K, Write, 1>(rule.shapes_gradient());
    default:
      return early_taker<T, K, Write, 2>(rule.shapes_gradient());
  }
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
    case OptimizerKind::rprop:
    case OptimizerKind::quickprop:
      return 2;
  }
  return 0;
}

template <typename T>
bool optimizer_step(T* params, const T* grads, T* const* state, index_t n,
                    const OptimizerSpec& spec, UpdateBounds* bounds, GradientBound gradient,
                    UpdateShares shares) {
  // params (n) updated from grads (n) and state (count x n)
  require_shares_tile(shares, n);
  return run_update(params, grads, state, n, spec, UpdatePlan{true, shares, bounds, gradient});
}

template <typename T>
bool optimizer_step_ref(T* params, const T* grads, T* const* state, index_t n,
                        const OptimizerSpec& spec) {
  return run_update(params, grads, state, n, spec, UpdatePlan{false, {}, nullptr, {}});
}

template <typename T>
void optimizer_step_checked(T* params, const T* grads, T* const* state, index_t n,
                            const OptimizerSpec& spec, UpdateShares shares) {
  require_shares_tile(shares, n);
  // Only what EarlyUpdate::check takes can have been checked: refused before any write.
  if (!taken_early(spec) ||
      !run_update(params, grads, state, n, spec, UpdatePlan{true, shares, nullptr, {}, true}))
    throw std::logic_error("an optimizer update was written as checked without its check");
}

template <typename T>
double largest_magnitude(const T* x, index_t n) {
  return largest_magnitude(x, n, true);
}

template <typename T>
double gradient_norm(const T* grads, index_t n) {
  // sqrt(sum grads^2): block sums in parallel, then added in block order
  constexpr index_t kBlock = 4096;
  const index_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partial(std::size_t(blocks), 0.0);
  parallel_for(blocks, n >= kElementwiseParallelMin, [&](index_t b) {
    double sum = 0.0;
    const index_t end = std::min(n, (b + 1) * kBlock);
    for (index_t i = b * kBlock; i < end; ++i) sum += double(grads[i]) * double(grads[i]);
    partial[std::size_t(b)] = sum;
  });
  double total = 0.0;
  for (double value : partial) total += value;
  return std::sqrt(total);
}

template <typename T>
bool sgd_update(T* params, const T* grads, T* velocity, index_t n, const OptimizerSpec& spec) {
  OptimizerSpec sgd = spec;
  sgd.kind = OptimizerKind::sgd;
  T* const state[3] = {velocity, nullptr, nullptr};  // sized for any kind, read up to count
  return optimizer_step(params, grads, state, n, sgd);
}

template <typename T>
void EarlyUpdate<T>::start(RangeFn range, T* params, const T* grads, T* const* state, index_t n,
                           const OptimizerSpec& spec) {
  range_ = range;
  spec_ = spec;
  const int count = optimizer_state_count(spec);
  for (int i = 0; i < 3; ++i) state_[i] = i < count ? state[i] : nullptr;
  params_ = params;
  grads_ = grads;
  n_ = n;
  failed_.store(false, std::memory_order_relaxed);
  taken_.store(0, std::memory_order_relaxed);
  for (auto* written : {&written_params_, &written_state0_, &written_state1_})
    written->store(0, std::memory_order_relaxed);
}

template <typename T>
bool EarlyUpdate<T>::prove(T* params, const T* grads, T* const* state, index_t n,
                           const OptimizerSpec& spec, UpdateBounds& bounds,
                           double (*gradient_bound)(const void*, double), const void* context) {
  range_ = nullptr;
  bounds_ = nullptr;
  if (!taken_early(spec)) return false;
  const Rule<T> rule(spec, state);
  RangeFn writer = nullptr;
  auto try_kind = [&](auto kind) {
    constexpr OptimizerKind K = decltype(kind)::value;
    if (!bounds.known) measure_bounds<T, K>(rule, params, n, true, bounds);
    const double gradient = gradient_bound(context, bounds.params);
    if (!bounds_after<T, K>(rule, bounds.params, bounds.state, gradient).finite) return false;
    writer = early_taker<T, K, true>(rule);
    return writer != nullptr;
  };
  if (!with_early_kind(spec.kind, try_kind)) return false;
  start(writer, params, grads, state, n, spec);
  bounds_ = &bounds;
  return true;
}

template <typename T>
bool EarlyUpdate<T>::check(T* params, const T* grads, T* const* state, index_t n,
                           const OptimizerSpec& spec) {
  range_ = nullptr;
  bounds_ = nullptr;
  if (!taken_early(spec)) return false;
  const Rule<T> rule(spec, state);
  const RangeFn checker = with_early_kind(spec.kind, [&](auto kind) {
    return early_taker<T, decltype(kind)::value, false>(rule);
  });
  if (checker == nullptr) return false;
  start(checker, params, grads, state, n, spec);
  return true;
}

template <typename T>
void EarlyUpdate<T>::take(index_t first, index_t count, const T* gradient) const {
  // A checked update writes later, from the grads buffer: its gradient must be there.
  if (gradient != nullptr && bounds_ == nullptr)
    throw std::logic_error("a checked update's gradient must be in the grads buffer");
  // Every buffer from the piece's first entry on, so that its entry i is gradient[i] when given.
  const T* const piece_gradient = gradient != nullptr ? gradient : grads_ + first;
  T* const state[3] = {state_[0] ? state_[0] + first : nullptr,
                       state_[1] ? state_[1] + first : nullptr,
                       state_[2] ? state_[2] + first : nullptr};
  WrittenMagnitudes<T> written;
  if (range_(spec_, state, params_ + first, piece_gradient, 0, count, &written) != 0)
    failed_.store(true, std::memory_order_relaxed);
  if (bounds_ != nullptr) {  // proven: the piece was written
    raise_to(written_params_, written.params);
    raise_to(written_state0_, written.state0);
    raise_to(written_state1_, written.state1);
  }
  taken_.fetch_add(count, std::memory_order_relaxed);
}

template <typename T>
void EarlyUpdate<T>::take_on_threads(index_t first, index_t count) const {
  for_each_share(count, true, [&](index_t share, index_t length) {
    take(first + share, length);
  });
}

template <typename T>
void EarlyUpdate<T>::finish() {
  if (failed_.load(std::memory_order_relaxed))
    throw std::logic_error("an optimizer update proven finite was not; the weights are invalid");
  if (!covered())
    throw std::logic_error("an early optimizer update did not write every parameter once");
  // Every parameter and state entry was written once: the largest written are the new values'
  // largest, as exact as a scan of the buffers (measure_bounds) would find, for no pass of
  // their own. (Moving the bounds by bounds_after with a bound on the gradient instead needed
  // a scan of every layer's delta after the backward pass: 18-20 us of a step of deep or mnist
  // on two threads, on the calling thread alone.)
  bounds_->params = magnitude_from_bits<T>(written_params_.load(std::memory_order_relaxed));
  bounds_->state[0] = magnitude_from_bits<T>(written_state0_.load(std::memory_order_relaxed));
  bounds_->state[1] = magnitude_from_bits<T>(written_state1_.load(std::memory_order_relaxed));
  ++bounds_->proven;
  ++bounds_->proven_unscanned;
  ++bounds_->early;
}

template <typename T>
bool EarlyUpdate<T>::all_finite() const {
  if (!covered())
    throw std::logic_error("an early optimizer check did not visit every parameter once");
  return !failed_.load(std::memory_order_relaxed);
}

#define BACKPROP_INSTANTIATE_OPTIM(T)                                                           \
  template bool optimizer_step<T>(T*, const T*, T* const*, index_t, const OptimizerSpec&,      \
                                  UpdateBounds*, GradientBound, UpdateShares);                 \
  template bool optimizer_step_ref<T>(T*, const T*, T* const*, index_t, const OptimizerSpec&);  \
  template void optimizer_step_checked<T>(T*, const T*, T* const*, index_t, const OptimizerSpec&, \
                                          UpdateShares);                                        \
  template bool sgd_update<T>(T*, const T*, T*, index_t, const OptimizerSpec&);                 \
  template double gradient_norm<T>(const T*, index_t);                                          \
  template double largest_magnitude<T>(const T*, index_t);                                     \
  template class EarlyUpdate<T>;
BACKPROP_INSTANTIATE_OPTIM(float)
BACKPROP_INSTANTIATE_OPTIM(double)
#undef BACKPROP_INSTANTIATE_OPTIM

}  // namespace backprop
