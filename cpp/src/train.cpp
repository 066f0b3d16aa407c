// The native training engine: a mini-batch step and a shuffled epoch, each one call.
#include "backprop/train.hpp"
#include "backprop/float_mode.hpp"
#include "backprop/threads.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>

namespace backprop {
namespace {

// How many train_steps have checked their update in the backward pass
// (train_step_checked_in_backward_count).
std::atomic<std::uint64_t> checked_in_backward{0};

// What a step's gradient came from, for the proof of its update (mlp_gradient_bound): a bound
// only when the inputs and deltas hold fewer values than the gradient, else +inf, and the proof
// scans the gradient. (784-16-10 at 512 rows: 423k values against 12.7k weights.)
template <typename T>
struct GradientInputs {
  const NetworkSpec<T>& net;
  const T* x;
  index_t m;
  Workspace<T>& ws;
  mutable bool inputs_recorded = false;

  static double bound(const void* context) {
    const GradientInputs& inputs = *static_cast<const GradientInputs*>(context);
    if (!inputs.cheaper_than_a_scan()) return std::numeric_limits<double>::infinity();
    if (inputs.inputs_recorded)
      return mlp_gradient_bound_from_deltas(inputs.net, inputs.m, inputs.ws);
    return mlp_gradient_bound(inputs.net, inputs.x, inputs.m, inputs.ws);
  }

  // For EarlyUpdate::prove, before the backward pass: from the output's deltas, the inputs and
  // the weights' bound.
  static double bound_before_backward(const void* context, double weight_bound) {
    const GradientInputs& inputs = *static_cast<const GradientInputs*>(context);
    inputs.inputs_recorded = true;  // in ws.input_bound, for bound() if the proof fails
    return mlp_gradient_bound_before_backward(inputs.net, inputs.x, inputs.m, inputs.ws,
                                              weight_bound);
  }

  bool cheaper_than_a_scan() const { return mlp_gradient_bound_reads(net, m) < net.n_params(); }
};

}  // namespace

template <typename T>
StepResult train_step(const NetworkSpec<T>& net, T* params, T* grads, T* const* state,
                      const OptimizerSpec& opt, const T* x, const T* y, const T* row_weight,
                      index_t m, Workspace<T>& ws, UpdateBounds* bounds) {
  // x (m x n_inputs), y (m x n_outputs); params, grads and each state buffer (n_params)
  const TrainingFloatMode mode;
  StepResult result;
  const T* y_hat = mlp_forward(net, params, x, m, ws, opt.step);  // dropout masks of this step
  const index_t n_out = net.n_outputs();
  result.loss = loss_forward(net.loss, net.reduction, ws.pre.back().data(), y_hat, y, row_weight,
                             m, n_out, net.output);
  if (!std::isfinite(result.loss)) {
    result.finite = false;  // keep the last good weights
    return result;
  }
  result.correct =
      count_correct(y_hat, y, m, n_out, net.loss == Loss::binary_cross_entropy || n_out == 1);
  const index_t n_params = net.n_params();
  mlp_output_delta(net, y, row_weight, m, ws);
  const GradientInputs<T> inputs{net, x, m, ws};
  // Each layer updated in the backward pass, while its weights and gradient are in cache, when
  // the update can be proven finite before the gradient exists (a finite loss can still give an
  // update that overflows: float32 gradients, a huge lr). The bits are the same. Epochs on the
  // 2-vCPU Xeon, samples/s, alternated rounds: deep on two threads faster in 10 of 11 rounds
  // (-0.9% to +4.7%, median +2.1%), on one thread +4.1% to +7.4% (4 rounds); tiny (once its
  // first layer, with no dX, kept even rows), mnist and wide within the noise.
  EarlyUpdate<T> early;
  if (bounds != nullptr && inputs.cheaper_than_a_scan() &&
      early.prove(params, grads, state, n_params, opt, *bounds,
                  &GradientInputs<T>::bound_before_backward, &inputs)) {
    mlp_backprop(net, params, x, m, ws, grads, &early);
    early.finish();
    return result;
  }
  const UpdateShares shares{ws.parameter_rows.data(), ws.parameter_rows.size()};
  // Without carried bounds (a train_step called on its own, whose buffers anything may have
  // written since the last), each layer's update is checked in the backward pass, while its
  // weights and gradient are in cache, and then written in one pass if every new value is
  // finite, rather than checked in a pass of its own over every buffer after the backward
  // pass. The bits are the same. Per-call steps, samples/s, medians of alternated rounds: one
  // build with either path, two Xeon threads, deep 57.8k -> 60.2k, mnist 70.1k -> 71.2k
  // (faster in every round), one thread deep 34.6k -> 35.7k; against the last build, ten
  // rounds, deep +1.3%, mnist +0.9%, tiny +1.8% (four rounds); wide within the noise. The
  // writing pass goes from the first matrix to the last: the one the check took last is the
  // first layer's, still in cache (the other order gained nothing).
  if (bounds == nullptr && early.check(params, grads, state, n_params, opt)) {
    checked_in_backward.fetch_add(1, std::memory_order_relaxed);
    mlp_backprop(net, params, x, m, ws, grads, &early);
    result.finite = early.all_finite();
    if (result.finite) optimizer_step_checked(params, grads, state, n_params, opt, shares);
    return result;
  }
  mlp_backprop(net, params, x, m, ws, grads);
  // Else the optimizer proves or checks the update after the backward pass, and writes nothing
  // when it would not be finite, keeping the last good weights.
  GradientBound gradient{&GradientInputs<T>::bound, &inputs};
  gradient.weights_read_in_own_shares = mlp_forward_splits_weights_by_rows(net, m);
  result.finite = optimizer_step(params, grads, state, n_params, opt, bounds, gradient, shares);
  return result;
}

namespace {

// Whether the listed rows follow one another (an unshuffled epoch's batches): the batch then
// lies in src as it is, and the step reads it there rather than from a copy. Skipping the copy
// made tiny's unshuffled epochs 6-12% faster on two Xeon threads (the copy ran on the calling
// thread while the other waited) and 2-3% on one; mnist and deep 1-3%. The bits are the same.
inline bool consecutive_rows(const index_t* rows, index_t count) {
  for (index_t i = 1; i < count; ++i)
    if (rows[i] != rows[0] + i) return false;
  return true;
}

// The batch of the listed rows of src: src's own rows when `consecutive`, else a copy in dst.
template <typename T>
const T* batch_rows(T* dst, const T* src, const index_t* rows, index_t count, index_t width,
                    bool consecutive) {
  if (consecutive) return src + rows[0] * width;
  copy_listed_rows(ListedRows<T>{src, rows, count, width, dst});
  return dst;
}

// EpochResult::bounds from the bounds the last update left.
void report_bounds(const UpdateBounds& bounds, EpochResult& result) {
  result.bounds[0] = bounds.known ? bounds.params : -1.0;
  result.bounds[1] = bounds.known ? bounds.state[0] : -1.0;
  result.bounds[2] = bounds.known ? bounds.state[1] : -1.0;
}

}  // namespace

template <typename T>
EpochResult train_epoch(const NetworkSpec<T>& net, T* params, T* grads, T* const* state,
                        OptimizerSpec opt, const T* x, const T* y, const T* weight,
                        index_t n_rows, const index_t* order, index_t n_order,
                        index_t batch_size, Workspace<T>& ws) {
  // x (n_rows x n_inputs), y (n_rows x n_outputs); order (n_order) indexes rows of both
  (void)n_rows;  // the binding has checked every entry of order against it
  const TrainingFloatMode mode;
  EpochResult result;
  // Between batches nothing else writes params or state (the engine's mutex is held and no
  // callback runs), so each update can start from the bounds the last one left.
  UpdateBounds bounds;
  ws.reserve(net, std::min(batch_size, n_order));
  const index_t n_in = net.n_inputs(), n_out = net.n_outputs();
  for (index_t start = 0; start < n_order; start += batch_size) {
    const index_t rows = std::min(batch_size, n_order - start);
    const index_t* batch = order + start;
    const bool in_place = consecutive_rows(batch, rows);
    // A scattered batch's inputs are copied at the start of the first layer's product
    // (mlp_forward), by both threads when it splits by k blocks, rather than here by this
    // thread alone while the other waits, and then reads them all from this one's cache.
    // tiny's shuffled epochs, two threads, eight alternated rounds: +0.6% to +7.6% (median
    // +4%); deep and mnist (whose first layer splits by slabs) within the noise. Copying each
    // thread's k-block columns instead, without the barrier (each row then written in two
    // parts by two cores), lost 1.5-5%.
    const T* batch_x = in_place ? x + batch[0] * n_in : ws.batch_x.data();
    if (!in_place) ws.pending_batch = {x, batch, rows, n_in, ws.batch_x.data()};
    const T* batch_y = batch_rows(ws.batch_y.data(), y, batch, rows, n_out, in_place);
    const T* batch_w = nullptr;
    if (weight != nullptr)
      batch_w = batch_rows(ws.batch_w.data(), weight, batch, rows, index_t(1), in_place);
    const index_t proven_before = bounds.proven;
    const StepResult step = train_step(net, params, grads, state, opt, batch_x, batch_y, batch_w,
                                       rows, ws, &bounds);
    result.proven_updates = bounds.proven;
    result.proven_unscanned = bounds.proven_unscanned;
    result.early_updates = bounds.early;
    report_bounds(bounds, result);
    if (bounds.proven > proven_before) result.input_bound = ws.input_bound[0];
    if (!step.finite) {
      result.failed_batch = result.batches;
      return result;
    }
    opt.step += 1;  // Adam's bias correction and the like count every update
    result.loss_sum += net.reduction == Reduction::mean ? step.loss * double(rows) : step.loss;
    result.correct += step.correct;
    result.rows += rows;
    result.batches += 1;
  }
  return result;
}

std::uint64_t train_step_checked_in_backward_count() {
  return checked_in_backward.load(std::memory_order_relaxed);
}

#define BACKPROP_INSTANTIATE_TRAIN(T)                                                         \
  template StepResult train_step<T>(const NetworkSpec<T>&, T*, T*, T* const*,                 \
                                    const OptimizerSpec&, const T*, const T*, const T*,       \
                                    index_t, Workspace<T>&, UpdateBounds*);                   \
  template EpochResult train_epoch<T>(const NetworkSpec<T>&, T*, T*, T* const*, OptimizerSpec, \
                                      const T*, const T*, const T*, index_t, const index_t*,   \
                                      index_t, index_t, Workspace<T>&);
BACKPROP_INSTANTIATE_TRAIN(float)
BACKPROP_INSTANTIATE_TRAIN(double)
#undef BACKPROP_INSTANTIATE_TRAIN

}  // namespace backprop
