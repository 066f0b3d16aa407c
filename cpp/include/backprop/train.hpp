// The native training engine: one mini-batch step, and a whole shuffled epoch, each in one call.
#pragma once

#include <cstdint>

#include "backprop/mlp.hpp"
#include "backprop/optim.hpp"

namespace backprop {

struct StepResult {
  double loss = 0.0;        // the batch's reduced loss, before the update
  index_t correct = 0;      // correct rows (entries for binary_cross_entropy), before the update
  bool finite = true;       // false: the loss or the update was NaN or Inf; params and state
                            // were not changed (grads may have been)
};

// Forward, loss, backward and one optimizer update on m rows. grads is scratch: overwritten,
// except the rows of W a proven update (bounds) took from a thread's own buffer (mlp_backprop).
// row_weight (m) scales each sample's loss, or nullptr for 1.
// A non-finite loss leaves params and state untouched (finite = false). bounds: as
// optimizer_step's, for a caller that alone writes params and state between steps.
template <typename T>
StepResult train_step(const NetworkSpec<T>& net, T* params, T* grads, T* const* state,
                      const OptimizerSpec& opt, const T* x, const T* y, const T* row_weight,
                      index_t m, Workspace<T>& ws, UpdateBounds* bounds = nullptr);

// How many train_steps in this process have checked their update in the backward pass
// (EarlyUpdate::check; for the tests).
std::uint64_t train_step_checked_in_backward_count();

struct EpochResult {
  double loss_sum = 0.0;     // sum over batches of (batch loss x rows, or batch loss for sum)
  index_t correct = 0;
  index_t rows = 0;          // rows trained on before a stop
  index_t batches = 0;       // batches whose update was made
  index_t failed_batch = -1; // index of the batch whose loss was not finite, or -1
  index_t proven_updates = 0;  // updates whose bounds made the check pass unnecessary
  index_t proven_unscanned = 0;  // of those, proven from the layers' inputs and deltas alone
                                 // (after the backward pass, or before it for early updates)
  index_t early_updates = 0;     // of those, made layer by layer in the backward pass
  // The bounds carried past the last update made (UpdateBounds: parameters, then the state
  // the proof reads), or all -1 when the next update would measure them first.
  double bounds[3] = {-1.0, -1.0, -1.0};
  // Workspace::input_bound[0] after the last proven batch, or -1 when none was: the largest of
  // the first layer's inputs and 1 (the bias's) that its proof read, when the proof read the
  // inputs (for the tests).
  double input_bound = -1.0;
};

// Every mini-batch of the rows in `order` (a permutation of, or subset of, 0..n_rows-1),
// batch_size rows at a time (the last batch may be smaller), each a train_step; the optimizer's
// step count advances by one per batch. weight (n_rows) holds sample weights, or nullptr.
// Stops at the first non-finite loss, with the weights of the last good step. x, y and weight
// must not change during the call: a batch of consecutive rows is read where it lies, at its
// step, and any other is copied then.
template <typename T>
EpochResult train_epoch(const NetworkSpec<T>& net, T* params, T* grads, T* const* state,
                        OptimizerSpec opt, const T* x, const T* y, const T* weight,
                        index_t n_rows, const index_t* order, index_t n_order,
                        index_t batch_size, Workspace<T>& ws);

}  // namespace backprop
