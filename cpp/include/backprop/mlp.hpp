// A fully connected network over one flat parameter buffer: forward, loss and backward.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "backprop/activations.hpp"
#include "backprop/aligned_buffer.hpp"
#include "backprop/config.hpp"
#include "backprop/float_bits.hpp"
#include "backprop/losses.hpp"
#include "backprop/optim.hpp"

namespace backprop {

// Layer l maps fan_in -> fan_out: U = [X_s for s in sources] @ W + b, X_l = f(U). Source 0 is
// the network's input and source j >= 1 the output of layer j (1-based), always an earlier one,
// so a layer may skip layers (the shortcut connections of the 1986 paper). The rows of W are
// split in the order of `sources`; fan_in is the sum of their widths. The last layer's f is the
// network's output.
template <typename T>
struct LayerSpec {
  index_t fan_in = 0;
  index_t fan_out = 0;
  ActivationParams<T> act;    // hidden layers only
  std::vector<int> sources;   // empty means {l}: the previous layer (or the input for layer 0)
  double dropout = 0.0;       // hidden layers: the chance each output is zeroed in training
};

template <typename T>
struct NetworkSpec {
  index_t inputs = 0;
  std::vector<LayerSpec<T>> layers;
  OutputSpec<T> output;
  Loss loss = Loss::mse;
  Reduction reduction = Reduction::mean;
  std::uint64_t dropout_seed = 0;  // with the step number, fixes every dropout mask

  index_t n_inputs() const { return inputs; }
  index_t n_outputs() const { return layers.back().fan_out; }
  // Flat layout: W_1 (fan_in x fan_out, row-major), b_1, W_2, b_2, ...
  index_t weight_offset(std::size_t l) const;
  index_t bias_offset(std::size_t l) const { return weight_offset(l) + layers[l].fan_in * layers[l].fan_out; }
  index_t n_params() const;
  // The width of source s (0: the input, j: layer j's output).
  index_t source_width(int s) const { return s == 0 ? inputs : layers[std::size_t(s - 1)].fan_out; }
  // Fills empty source lists with the previous layer and checks every list; throws
  // std::invalid_argument naming the layer when a source is not earlier or widths do not add up.
  void resolve_sources();
};

// `count` listed rows of src, each `width` values, to copy into consecutive rows of dst.
template <typename T>
struct ListedRows {
  const T* src = nullptr;
  const index_t* rows = nullptr;
  index_t count = 0, width = 0;
  T* dst = nullptr;
  // When set, each share raises it to the largest magnitude it copied (as bits, float_bits.hpp).
  std::atomic<FloatBits<T>>* largest = nullptr;
};

// Copies share `part` of `parts` of them: contiguous rows, so that no two threads write parts
// of one row.
template <typename T>
void copy_listed_rows(const ListedRows<T>& listed, int part, int parts);

// Copies all of them, on the threads when they are many values (kElementwiseParallelMin).
template <typename T>
void copy_listed_rows(const ListedRows<T>& listed);

// Buffers for one batch of up to `capacity` rows, sized once and reused: every layer's
// pre-activation U_l, output X_l and gradient with respect to X_l, and a gathered batch.
template <typename T>
struct Workspace {
  index_t capacity = 0;
  // U_l, capacity x fan_out; empty for a hidden layer whose output serves as U_l
  // (output_serves_as_pre_activation): its sums go into post[l] and f overwrites them there
  std::vector<CacheLineVector<T>> pre;
  std::vector<CacheLineVector<T>> post;       // X_l = f(U_l); for the last layer, y_hat
  std::vector<CacheLineVector<T>> grad_post;  // dLoss/dX_l, then dLoss/dU_l in place
  std::vector<CacheLineVector<T>> dropped;    // X_l after dropout, for layers that have it
  index_t dropout_step = -1;                  // the training step of the last forward, -1: none
  std::vector<char> grad_written;             // whether grad_post[l] holds a contribution yet
  CacheLineVector<T> batch_x, batch_y, batch_w;  // train_epoch's copy of a scattered batch
  std::vector<ParameterMatrix> parameter_rows;   // each layer's W, then b: the update's shares
  std::vector<double> input_bound;  // each layer's largest input in this step (record_layer_inputs)
  // Each hidden layer's largest output as a training forward's threads wrote it, in the
  // product's write-back or the activation's pass (mlp_forward), or -1 where it was not
  // recorded (the output then is scanned when a bound needs it).
  std::vector<double> output_bound;
  // The largest magnitude in the batch this step's forward copied into batch_x (pending_batch),
  // recorded as it was copied (+inf for NaN or Inf), or -1 (the input then is scanned).
  double batch_bound = -1.0;
  std::vector<double> delta_bound;  // bounds on the layers' deltas before the backward pass
  // train_epoch's shuffled batch, not yet copied into batch_x. The first product that reads the
  // input copies it at its start (mlp_forward, GemmPrologue: in a k-block split, by all its
  // threads); rows == nullptr: none.
  ListedRows<T> pending_batch;

  void reserve(const NetworkSpec<T>& net, index_t rows);
};

// Forward pass over m rows of x (m x n_inputs); keeps U_l and X_l in ws. Returns y_hat
// (m x n_outputs, inside ws). training_step >= 0 applies dropout with the masks of that step
// (inverted dropout: kept outputs are scaled by 1 / (1 - p)); -1 is inference, no dropout.
template <typename T>
const T* mlp_forward(const NetworkSpec<T>& net, const T* params, const T* x, index_t m,
                     Workspace<T>& ws, index_t training_step = -1);

// Whether mlp_forward on m rows multiplies the weights by k blocks, each thread its own rows
// (GemmSplit::k_blocks): some product does, and every other that may split over threads at all
// does too.
template <typename T>
bool mlp_forward_splits_weights_by_rows(const NetworkSpec<T>& net, index_t m);

// Backward pass after mlp_forward on the same x: writes dLoss/dparams into grads (flat, the
// layout of params; every entry is written, so grads need not be cleared first). row_weight
// (m) scales each sample's loss, or nullptr for 1.
template <typename T>
void mlp_backward(const NetworkSpec<T>& net, const T* params, const T* x, const T* y,
                  const T* row_weight, index_t m, Workspace<T>& ws, T* grads);

// The output delta D_L = dLoss/dU_L (m x n_outputs) into ws.grad_post.back(): mlp_backward's
// first step.
template <typename T>
void mlp_output_delta(const NetworkSpec<T>& net, const T* y, const T* row_weight, index_t m,
                      Workspace<T>& ws);

// The backward pass from a given output delta: ws.grad_post.back() holds dLoss/dU_L (m x
// n_outputs) on entry; on return ws.grad_post[l] holds dLoss/dU_l for every layer, and the
// parameter gradient is written into grads unless grads is nullptr (Jacobians need only deltas).
// With `update` (over params and grads, proven or checked), each layer's W and b take their
// update as soon as the layer's products have read W for the last time, while they are in
// cache: written if proven, else checked. A proven update may take a thread's rows of dW from
// the thread's own buffer (mlp.cpp, gradient_in_thread_buffer), leaving those rows of grads
// unwritten: nothing reads them after a proven update.
template <typename T>
void mlp_backprop(const NetworkSpec<T>& net, const T* params, const T* x, index_t m,
                  Workspace<T>& ws, T* grads, const EarlyUpdate<T>* update = nullptr);

// How many layers' backward steps have run as one parallel region in this process (mlp.cpp,
// backward_in_one_region; for the tests).
std::uint64_t mlp_backward_region_count();
// How many threads' rows of a weight gradient went to the thread's own buffer instead of the
// grads buffer, for an update that writes them as it takes them (mlp.cpp,
// gradient_in_thread_buffer; for the tests).
std::uint64_t mlp_thread_gradient_count();

// After mlp_backward on the same m rows of x: a bound on the magnitude of every entry it wrote
// into grads, from the layers' inputs and deltas (+inf when one is not finite, or m is too
// large to bound the rounding). A weight's gradient sums m products of an input and a delta, a
// bias's m deltas: at most m x the largest input (at least 1) x the largest delta of the layer,
// plus half the smallest subnormal per product (gradual underflow rounds absolutely), and in
// any order rounding makes a sum at most a factor 1 / (1 - m u) larger; (m + 5) u also covers
// the bound's own arithmetic in double.
// It records each layer's largest input in ws.input_bound, for mlp_gradient_bound_from_deltas.
template <typename T>
double mlp_gradient_bound(const NetworkSpec<T>& net, const T* x, index_t m, Workspace<T>& ws);

// The same bound from the deltas and the inputs recorded by the last mlp_gradient_bound or
// mlp_gradient_bound_before_backward on these rows.
template <typename T>
double mlp_gradient_bound_from_deltas(const NetworkSpec<T>& net, index_t m,
                                      const Workspace<T>& ws);

// Before mlp_backprop, with D_L in place (mlp_output_delta): a bound on every gradient entry the
// backward pass will write, for weights of magnitude at most weight_bound, so that an update can
// be proven finite before its gradient exists (EarlyUpdate). Each layer's delta is bounded from
// its readers': a sum of fan_out products of a delta and a weight, through dropout's scale and
// a derivative of at most derivative_bound (mlp.cpp), given that the layer's U and X are finite
// (checked here: U where the layer keeps it apart, X through its readers' inputs, or itself
// under dropout, whose zeros would hide it from them); then the gradient as mlp_gradient_bound
// bounds it. +inf when a value read is not finite or the rounding cannot be bounded. The bound
// grows by a factor of about fan_out x weight_bound per layer, far above the gradient (whose
// deltas add with random signs), but for deep networks of moderate weights still well inside
// float32. Records the inputs as mlp_gradient_bound does.
template <typename T>
double mlp_gradient_bound_before_backward(const NetworkSpec<T>& net, const T* x, index_t m,
                                          Workspace<T>& ws, double weight_bound);

// How many values mlp_gradient_bound reads for m rows (a source read by several layers counts
// once for each); mlp_gradient_bound_before_backward reads these too, and the U (or X) of the
// layers whose U is kept apart (not relu or identity) or that have dropout. Hidden outputs a
// training forward recorded (Workspace::output_bound) count as read, though they are not
// scanned: the count stays an upper bound on the cost, as train.cpp's choice needs.
template <typename T>
index_t mlp_gradient_bound_reads(const NetworkSpec<T>& net, index_t m);

}  // namespace backprop
