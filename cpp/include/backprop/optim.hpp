// Optimizer updates over a flat parameter buffer, with state buffers of the same layout.
#pragma once

#include <atomic>
#include <cstddef>

#include "backprop/config.hpp"
#include "backprop/float_bits.hpp"

namespace backprop {

enum class OptimizerKind : int {
  sgd = 0,
  adam = 1,
  adamw = 2,
  rmsprop = 3,
  adagrad = 4,
  rprop = 5,      // iRPROP-: sign-based, per-weight step sizes (torch.optim.Rprop)
  quickprop = 6,  // Fahlman's quadratic step from the last two slopes
};

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
  double eta_minus = 0.5;     // rprop: step-size factors on a sign change / no change
  double eta_plus = 1.2;
  double step_min = 1e-6;     // rprop: step-size bounds
  double step_max = 50.0;
  double max_growth = 1.75;   // quickprop: a step is at most this many times the last
  // Applied to the gradient first, for every kind, in this order: scale the whole gradient so
  // its L2 norm is at most clip_norm, clamp each entry to +-clip_value (0 turns either off),
  // then add l1 * sign(p) (L1 regularisation).
  double clip_norm = 0.0;
  double clip_value = 0.0;
  double l1 = 0.0;
  index_t step = 0;
};

// How many state buffers (each the size of the parameters) a spec needs, in this order:
// sgd: velocity if momentum; adam/adamw: first and second moments; rmsprop: square average,
// then momentum buffer if momentum, then gradient average if centered; adagrad: squared sum;
// rprop: previous gradient, step sizes; quickprop: previous gradient, previous step.
int optimizer_state_count(const OptimizerSpec& spec);

// Upper bounds on the magnitudes in the parameters and in the optimizer's state, carried from
// one update to the next while nothing else writes those buffers (the batches of one
// train_epoch call). With them and the gradients' largest magnitude an sgd, adam or adamw
// update can prove every new value finite, and skip its check pass: one pass over the
// gradients instead of one over gradients, parameters and state.
struct UpdateBounds {
  bool known = false;  // false: measure the buffers first
  double params = 0.0;
  double state[2] = {0.0, 0.0};  // sgd: momentum; adam, adamw: first and second moments
  index_t proven = 0;            // updates made without a check pass
  index_t proven_unscanned = 0;  // of those, proven without a scan of the gradient: with a
                                 // GradientBound, or by EarlyUpdate
  index_t early = 0;             // of those, made piece by piece (EarlyUpdate)
};

// A bound on the magnitudes of an update's gradient that costs less to find than a scan of the
// gradient: compute(context) returns it, or +inf. train_step's comes from the layers' inputs and
// deltas when they hold fewer values than the gradient.
struct GradientBound {
  double (*compute)(const void* context) = nullptr;
  const void* context = nullptr;
  // Whether the step's products split the weights between the threads by rows, as the update's
  // shares do (train_step's forward split by k blocks), so each thread's share is mostly in its
  // own cache already: then no scan fetches the weights for writing (optim.cpp,
  // warm_for_update).
  bool weights_read_in_own_shares = false;
};

// A matrix among the parameters: `rows` rows of `columns` values from `offset` on.
struct ParameterMatrix {
  index_t offset = 0, rows = 0, columns = 0;
};

// How an update's passes divide the parameters between the threads. By default each thread
// takes one contiguous share of the flat buffer. Given the matrices that make up the buffer
// (in order, covering it exactly: optimizer_step and optimizer_step_checked check), each
// thread takes its share of the rows of every one (Share): train_step lists each layer's
// weights (fan_in rows) and bias (fan_out rows of one), whose rows the step's products mostly
// read and wrote on that same thread (a single-source layer's backward region writes dW by
// those rows and db by those columns, and the forward's k-block split reads W by rows near
// them), so each thread updates what is already in its own cache. deep on two Xeon threads,
// with its forward split by k blocks, train_step 46.2k / 46.7k -> 47.4k / 48.8k samples/s
// (alternated medians) against one share of the flat buffer per thread. (An epoch's early
// update, EarlyUpdate, writes each layer in its backward pass instead, each thread the rows of
// dW it wrote there; a train_step on its own checks them there, then writes by these shares.)
struct UpdateShares {
  const ParameterMatrix* matrices = nullptr;
  std::size_t count = 0;
};

// One update of n parameters from their gradients, as torch.optim defines each kind.
// state holds optimizer_state_count(spec) buffers of n elements, zero before the first step.
// All or nothing: when any new value would be NaN or Inf, nothing is written and it returns
// false (a first pass checks, a second writes). With bounds (sgd, adam, adamw), an update they
// prove finite makes the writing pass alone and moves the bounds past it. The proof bounds the
// gradient with `gradient` when that proves the update, else with its largest magnitude from a
// scan. `shares`: how the passes split the parameters between threads (the bits are the same
// either way).
template <typename T>
bool optimizer_step(T* params, const T* grads, T* const* state, index_t n,
                    const OptimizerSpec& spec, UpdateBounds* bounds = nullptr,
                    GradientBound gradient = {}, UpdateShares shares = {});

// The same update one element after another on one thread: the twin the tests compare against.
template <typename T>
bool optimizer_step_ref(T* params, const T* grads, T* const* state, index_t n,
                        const OptimizerSpec& spec);

// optimizer_step's writing pass alone, for an update whose every new value has been found
// finite already (EarlyUpdate::check, then all_finite). Throws std::logic_error if one is not
// after all (the weights are then invalid), or for a spec the check does not take (clip_norm).
template <typename T>
void optimizer_step_checked(T* params, const T* grads, T* const* state, index_t n,
                            const OptimizerSpec& spec, UpdateShares shares = {});

// The largest magnitudes among the values an update wrote, as their bits with the sign cleared
// (float_bits.hpp: non-negative floats order as their bits do, and an integer max vectorizes
// where a float max does not). A second state buffer (Adam's second moment) with a sign bit set
// counts as unbounded, as measure_bounds counts it: state1 then holds Inf's bits.
template <typename T>
struct WrittenMagnitudes {
  FloatBits<T> params = 0, state0 = 0, state1 = 0;
};

// An sgd, adam or adamw update taken piece by piece in the backward pass, as each layer's
// gradient becomes final, while the layer's weights and gradient are still in cache:
// - proven finite before its gradient exists (prove), from bounds on the old values and a
//   bound on the gradient to come, each piece is written as it is taken (an epoch's updates);
// - or each piece is checked as it is taken (check): its new values are computed and not
//   written, and after the pass optimizer_step_checked writes them all if every one was finite
//   (train_step without carried bounds), in place of optimizer_step's check pass over every
//   buffer after the backward pass.
// All or nothing holds either way: nothing is written unless every new value of the whole
// update is known to be finite. The bits are those of optimizer_step.
template <typename T>
class EarlyUpdate {
 public:
  // Whether `bounds` (measured first when unknown) prove every new value finite for any
  // gradient of magnitude at most gradient_bound(context, bounds.params), a bound given the
  // weights' bound. False, leaving bounds valid, for the other kinds, with clip_norm (whose
  // scale needs the whole gradient), or when they do not. params, grads and the state buffers
  // (n each) must outlive the writes.
  bool prove(T* params, const T* grads, T* const* state, index_t n, const OptimizerSpec& spec,
             UpdateBounds& bounds, double (*gradient_bound)(const void*, double),
             const void* context);
  // Whether the update can be checked piece by piece instead (sgd, adam and adamw without
  // clip_norm; false for the others). Arguments as for prove().
  bool check(T* params, const T* grads, T* const* state, index_t n, const OptimizerSpec& spec);
  // Takes the update of entries [first, first + count), whose gradients must be final: writes
  // it (proven) or checks it (checked), on the calling thread (one thread's share inside a
  // parallel region), or split over the threads. The gradients are read from the grads buffer
  // prove() or check() was given, or, when `gradient` is set, from gradient[0, count): a
  // proven update's caller may leave the buffer unwritten (writes_as_taken; a checked update
  // given one throws std::logic_error, since it writes later from the buffer).
  void take(index_t first, index_t count, const T* gradient = nullptr) const;
  void take_on_threads(index_t first, index_t count) const;
  // Whether each piece is written as it is taken (proven), so that nothing reads its gradient
  // afterwards; a checked update reads the grads buffer again when it writes.
  bool writes_as_taken() const { return bounds_ != nullptr; }
  // A proven update, after every entry has been taken once: throws std::logic_error when a new
  // value was not finite after all (a wrong proof; the weights are then invalid) or when the
  // pieces did not add up to n entries, else sets the bounds to the largest magnitudes the
  // pieces wrote: exact, found as they were written, with no scan of the deltas or the
  // gradient. Exact only because the pieces tile [0, n), each entry taken once: the callers'
  // shares do (mlp.cpp), and covered() checks their count.
  void finish();
  // A checked update, after every entry has been taken once: whether every new value was
  // finite. Throws std::logic_error when the pieces did not add up to n entries.
  bool all_finite() const;

 private:
  using RangeFn = int (*)(const OptimizerSpec&, T* const*, T*, const T*, index_t, index_t,
                          WrittenMagnitudes<T>*);
  RangeFn range_ = nullptr;  // set by a successful prove() or check()
  OptimizerSpec spec_;
  T* state_[3] = {nullptr, nullptr, nullptr};
  T* params_ = nullptr;
  const T* grads_ = nullptr;
  UpdateBounds* bounds_ = nullptr;
  index_t n_ = 0;
  // Readies the update's buffers and counters for its pieces; `range` writes or checks one.
  void start(RangeFn range, T* params, const T* grads, T* const* state, index_t n,
             const OptimizerSpec& spec);
  bool covered() const { return taken_.load(std::memory_order_relaxed) == n_; }
  mutable std::atomic<bool> failed_{false};  // a piece had a new value that was not finite
  mutable std::atomic<index_t> taken_{0};    // entries taken so far
  // What the pieces wrote so far (a proven update's), merged over the threads.
  mutable std::atomic<FloatBits<T>> written_params_{0}, written_state0_{0}, written_state1_{0};
};

// The largest |x| of n entries, +inf when one is Inf or NaN; split over the threads when n is
// large.
template <typename T>
double largest_magnitude(const T* x, index_t n);

// The L2 norm of n gradient entries, summed in double over fixed blocks in a fixed order, so it
// is the same for any thread count.
template <typename T>
double gradient_norm(const T* grads, index_t n);

// SGD alone (the NumPy-level kernel): velocity may be nullptr when momentum is 0.
template <typename T>
bool sgd_update(T* params, const T* grads, T* velocity, index_t n, const OptimizerSpec& spec);

}  // namespace backprop
