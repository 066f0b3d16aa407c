// Forward and backward passes of a fully connected network over its flat parameter buffer.
#include "backprop/mlp.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <limits>
#include <stdexcept>
#include <string>

#include "backprop/checks.hpp"
#include "backprop/gemm.hpp"
#include "backprop/optim.hpp"
#include "backprop/threads.hpp"

namespace backprop {

template <typename T>
index_t NetworkSpec<T>::weight_offset(std::size_t l) const {
  index_t offset = 0;
  for (std::size_t i = 0; i < l; ++i) offset += layers[i].fan_in * layers[i].fan_out + layers[i].fan_out;
  return offset;
}

template <typename T>
index_t NetworkSpec<T>::n_params() const {
  return weight_offset(layers.size());
}

template <typename T>
void NetworkSpec<T>::resolve_sources() {
  for (std::size_t l = 0; l < layers.size(); ++l) {
    LayerSpec<T>& layer = layers[l];
    if (layer.sources.empty()) layer.sources = {int(l)};
    index_t width = 0;
    for (int s : layer.sources) {
      if (s < 0 || s > int(l))
        throw std::invalid_argument("layer " + std::to_string(l + 1) + " reads source " +
                                    std::to_string(s) + "; sources must be 0 (the input) to " +
                                    std::to_string(l) + " (earlier layers)");
      width += source_width(s);
    }
    if (width != layer.fan_in)
      throw std::invalid_argument("layer " + std::to_string(l + 1) + " has fan_in " +
                                  std::to_string(layer.fan_in) + " but its sources give " +
                                  std::to_string(width) + " values");
  }
}

template <typename T>
void copy_listed_rows(const ListedRows<T>& listed, int part, int parts) {
  const Share mine(listed.count, part, parts);
  for (index_t i = mine.first; i < mine.last; ++i)
    std::copy(listed.src + listed.rows[i] * listed.width,
              listed.src + (listed.rows[i] + 1) * listed.width, listed.dst + i * listed.width);
  if (listed.largest != nullptr && mine.first < mine.last)  // the copy, still in cache
    raise_to(*listed.largest,
             largest_magnitude_bits(listed.dst + mine.first * listed.width, listed.width,
                                    mine.last - mine.first, listed.width));
}

template <typename T>
void copy_listed_rows(const ListedRows<T>& listed) {
  const TeamCall team(share_count(listed.count * listed.width, true), false);
  team.run([&](int part, int parts) { copy_listed_rows(listed, part, parts); });
}

namespace {

// Whether layer l keeps its output alone, with no U_l of its own (Workspace::pre): a hidden
// layer whose output serves as its pre-activation. Its forward product writes the sums into
// X_l and the activation overwrites them in place, so a step writes and reads one matrix of
// the layer's size fewer, and the workspace holds one fewer. Deep's epochs on two Xeon
// threads, 16 alternated rounds: faster in 11, by +2.3% in the median round (-2.4% to +7.6%);
// tiny and mnist within the noise. The bits are the same.
template <typename T>
bool keeps_output_alone(const NetworkSpec<T>& net, std::size_t l) {
  return l + 1 < net.layers.size() && output_serves_as_pre_activation(net.layers[l].act.kind);
}

}  // namespace

template <typename T>
void Workspace<T>::reserve(const NetworkSpec<T>& net, index_t rows) {
  if (rows <= capacity && pre.size() == net.layers.size()) return;
  const index_t cap = std::max(rows, capacity);
  const std::size_t n_layers = net.layers.size();
  pre.resize(n_layers);
  post.resize(n_layers);
  grad_post.resize(n_layers);
  grad_written.assign(n_layers, 0);
  for (std::size_t l = 0; l < n_layers; ++l) {
    const std::size_t size = std::size_t(cap * net.layers[l].fan_out);
    if (keeps_output_alone(net, l))
      pre[l] = CacheLineVector<T>();
    else
      pre[l].assign(size, T(0));
    post[l].assign(size, T(0));
    grad_post[l].assign(size, T(0));
  }
  dropped.resize(n_layers);
  for (std::size_t l = 0; l + 1 < n_layers; ++l)
    if (net.layers[l].dropout > 0.0) dropped[l].assign(std::size_t(cap * net.layers[l].fan_out), T(0));
  batch_x.assign(std::size_t(cap * net.n_inputs()), T(0));
  batch_y.assign(std::size_t(cap * net.n_outputs()), T(0));
  batch_w.assign(std::size_t(cap), T(0));
  input_bound.assign(n_layers, 0.0);
  output_bound.assign(n_layers, -1.0);
  delta_bound.assign(n_layers, 0.0);
  parameter_rows.clear();
  for (std::size_t l = 0; l < n_layers; ++l) {
    const LayerSpec<T>& layer = net.layers[l];
    parameter_rows.push_back({net.weight_offset(l), layer.fan_in, layer.fan_out});
    parameter_rows.push_back({net.bias_offset(l), layer.fan_out, 1});
  }
  capacity = cap;
}

namespace {

// splitmix64's finaliser: a well-mixed 64-bit hash.
inline std::uint64_t mix(std::uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Whether dropout keeps one output. A pure function of (seed, step, layer, element), so the
// backward pass recomputes the forward's mask and any thread count draws the same one.
inline bool keeps(std::uint64_t layer_key, index_t element, double p) {
  return double(mix(layer_key ^ std::uint64_t(element)) >> 11) * 0x1.0p-53 >= p;
}

template <typename T>
std::uint64_t layer_key(const NetworkSpec<T>& net, index_t step, std::size_t l) {
  return mix(mix(net.dropout_seed ^ mix(std::uint64_t(step))) ^ std::uint64_t(l));
}

template <typename T>
bool dropout_on(const NetworkSpec<T>& net, const Workspace<T>& ws, std::size_t l) {
  return ws.dropout_step >= 0 && l + 1 < net.layers.size() && net.layers[l].dropout > 0.0;
}

// values (count) *= mask / (1 - p), written to out (which may be values).
template <typename T>
void apply_dropout(T* out, const T* values, index_t count, double p, std::uint64_t key) {
  const T scale = T(1.0 / (1.0 - p));
  parallel_for(count, count >= kElementwiseParallelMin,
               [&](index_t i) { out[i] = keeps(key, i, p) ? values[i] * scale : T(0); });
}

// The first layer that reads layer l's output: the last to add into its delta in the backward
// pass (n_layers when none does).
template <typename T>
std::size_t first_consumer(const NetworkSpec<T>& net, std::size_t l) {
  for (std::size_t later = l + 1; later < net.layers.size(); ++later)
    for (int s : net.layers[later].sources)
      if (std::size_t(s) == l + 1) return later;
  return net.layers.size();
}

// Whether a hidden layer of `count` outputs gets its activation in the write-back of its last
// product (gemm_fused's forward step), each tile (or column of tiles) by the thread that
// computed it while it is in cache, rather than in a pass of its own over U: when that pass would
// run on one thread (kElementwiseParallelMin) while the product may run on more, and the other
// threads would wait.
// Two AVX-512 threads (Xeon), samples/s, alternated medians: deep (64 x 256 per layer)
// train_step 44.9k -> 45.5k, epochs 46.5k -> 47.7k; mnist (128 x 512, a pass on both threads)
// lost 1.3% fused; one thread, deep and tiny within the noise. (On Zen 2, fusing every layer
// cost mnist and deep 1-5%.) The bits are the same.
inline bool activation_in_write_back(index_t count) { return count < kElementwiseParallelMin; }

// The same for the derivative in the backward pass, applied by the last product into the
// layer's delta (gemm_fused's backward step) unless dropout's mask must come first.
template <typename T>
bool derivative_in_write_back(const NetworkSpec<T>& net, const Workspace<T>& ws, std::size_t l,
                              index_t m) {
  return activation_in_write_back(m * net.layers[l].fan_out) && !dropout_on(net, ws, l);
}

// Every forward product of a layer sums in at least this many k blocks (gemm_k_block), for any
// batch size and thread count, so that a layer of 128 to 256 inputs, one block of KC otherwise,
// can still split by k blocks on two threads in training (below) with the bits of one: deep's
// 64 x 256 x 256 layers, two blocks of 128. The rule does not depend on the batch, so a row
// alone still gets the bits it gets in any batch; but kernels.dense_forward and gemm sum in the
// fewest blocks, so for layers of 128 to 256 inputs their bits differ from the network's. With
// the update's shares by rows (train.cpp; an early update takes its backward region's rows, for
// deep the same halves), two Xeon threads, three alternated rounds, samples/s: deep epochs
// 51.8k / 53.1k / 52.6k -> 58.7k / 56.1k / 56.4k, train_step 47.7k / 49.4k / 50.2k -> 52.2k /
// 54.8k / 53.1k; one thread, mnist, tiny's epochs and wide within the noise. Inference pays
// nothing: a block of two k blocks is packed once and each tile runs both while it is in L1
// (gemm.cpp, gemm_team).
constexpr index_t kLayerKBlocks = 2;

// How a layer's forward product X @ W splits over the threads in training: by k blocks (each
// thread its own rows of W, GemmSplit::k_blocks) where gemm_k_split_applies (the blocks'
// products the other threads add into U, m x n each, hold at most a third of W's k x n
// values); else by slabs of U. The update splits the weights by rows, so a column slab of U read
// every row of W, half of them last written by the other core: tiny's forward (32 x 128 x 784,
// four blocks of 196) took as long on two Xeon threads as on one. Two threads, samples/s,
// alternated medians: tiny train_step 269k / 276k -> 333k / 336k, shuffled epochs 265k / 269k
// -> 299k / 311k; mnist's second layer (128 x 512 x 512, two blocks) within the noise. The bits
// are the same. Inference, where nothing writes W, takes slabs: the k blocks' sums only cost
// there (two threads, rows/s: 784-128-10 on 32 rows 728k / 751k by k blocks, 883k / 921k by
// slabs; 784-512-512-10 on 128 rows 177k / 183k, 195k / 196k).
inline GemmSplit forward_split(index_t m, index_t k) {
  return gemm_k_split_applies(m, k, get_num_threads(), kLayerKBlocks) ? GemmSplit::k_blocks
                                                                      : GemmSplit::slabs_of_c;
}

// copy_listed_rows as a GemmPrologue.
template <typename T>
void copy_pending_rows(const void* context, int part, int parts) {
  copy_listed_rows(*static_cast<const ListedRows<T>*>(context), part, parts);
}

// Layer l's pre-activation U_l: its own buffer, or its output (keeps_output_alone).
template <typename T>
T* pre_activation(const NetworkSpec<T>& net, Workspace<T>& ws, std::size_t l) {
  return keeps_output_alone(net, l) ? ws.post[l].data() : ws.pre[l].data();
}

template <typename T>
const T* source_rows(const NetworkSpec<T>& net, const Workspace<T>& ws, const T* x, int s) {
  if (s == 0) return x;
  const std::size_t l = std::size_t(s - 1);
  return dropout_on(net, ws, l) ? ws.dropped[l].data() : ws.post[l].data();
}

}  // namespace

template <typename T>
const T* mlp_forward(const NetworkSpec<T>& net, const T* params, const T* x, index_t m,
                     Workspace<T>& ws, index_t training_step) {
  // for each layer: U (m x fan_out) = sum over sources of X_s (m x width_s) @ W_s + b; X = f(U)
  ws.reserve(net, m);
  ws.dropout_step = training_step;
  // A pending batch's largest input, recorded by the threads that copy it while the copy is in
  // their cache, for the proof of the update (record_layer_inputs), in place of a scan of the
  // batch on the calling thread alone: tiny's proof 1.7-4.3 -> 0.5-0.7 us a step (two Zen 5
  // threads, four alternated rounds of shuffled epochs, a busy hour; the step is about 52 us in
  // a quiet one). The bits are the same.
  std::atomic<FloatBits<T>> largest_input{0};
  ws.batch_bound = -1.0;
  ws.pending_batch.largest = &largest_input;
  for (std::size_t l = 0; l < net.layers.size(); ++l) {
    const LayerSpec<T>& layer = net.layers[l];
    const bool hidden = l + 1 < net.layers.size();
    const T* w = params + net.weight_offset(l);
    T* u = pre_activation(net, ws, l);  // out itself when the layer keeps its output alone
    T* out = ws.post[l].data();
    const T* bias = params + net.bias_offset(l);
    const bool fused = activation_in_write_back(m * layer.fan_out);
    // A training step's hidden output: each thread records the largest value it writes, in the
    // product's write-back or in the activation's pass, for the proof of the update
    // (record_layer_inputs), instead of a scan of X_l after the forward pass (on the calling
    // thread alone below 2^15 values) that reads half of it from the other core's cache. Two
    // Xeon threads: deep's proof 21.3 -> 6.2 us a step, mnist's 28.7 -> 16.2 us; epochs, six
    // alternated rounds, paired medians, mnist +1.0% for the activation's pass (deep's gain,
    // with the early update's exact bounds, in bench/RESULTS.md). The bits are the same.
    std::atomic<FloatBits<T>> largest_output{0};
    const bool records = training_step >= 0 && hidden;
    ws.output_bound[l] = -1.0;
    index_t row = 0;  // first row of W that the current source multiplies
    for (std::size_t i = 0; i < layer.sources.size(); ++i) {
      const int s = layer.sources[i];
      const index_t width = net.source_width(s);
      // The bias starts the first product in the GEMM's write-back, not in a pass of its own
      // over U; so does a small hidden layer's activation after the last product.
      GemmEpilogue<T> epilogue;
      if (hidden && fused && i + 1 == layer.sources.size()) {
        epilogue = GemmEpilogue<T>::forward(nullptr, layer.act, out, layer.fan_out);
        if (records) epilogue.largest_output = &largest_output;
      }
      if (i == 0) epilogue.bias = bias;
      const GemmSplit split =
          training_step >= 0 ? forward_split(m, width) : GemmSplit::slabs_of_c;
      // A pending batch is copied before the first product that reads the input: inside its
      // region when it splits by k blocks, else here (on the threads when it is large).
      GemmPrologue copy_batch;
      if (s == 0 && ws.pending_batch.rows != nullptr) {
        if (split == GemmSplit::k_blocks)
          copy_batch = {&copy_pending_rows<T>, &ws.pending_batch};
        else
          copy_listed_rows(ws.pending_batch);
      }
      gemm_fused<T>(false, false, m, layer.fan_out, width, T(1), source_rows(net, ws, x, s), width,
                    w + row * layer.fan_out, layer.fan_out, T(1), u, layer.fan_out, epilogue,
                    split, kLayerKBlocks, copy_batch);
      if (s == 0 && ws.pending_batch.rows != nullptr) {
        ws.batch_bound = magnitude_from_bits<T>(largest_input.load(std::memory_order_relaxed));
        ws.pending_batch.rows = nullptr;
      }
      row += width;
    }
    if (!hidden)
      output_forward(out, u, m, layer.fan_out, net.output);
    else if (!fused)
      activation_forward(out, u, m * layer.fan_out, layer.act,
                         records ? &largest_output : nullptr);
    if (records)
      ws.output_bound[l] = magnitude_from_bits<T>(largest_output.load(std::memory_order_relaxed));
    if (dropout_on(net, ws, l))
      apply_dropout(ws.dropped[l].data(), out, m * layer.fan_out, layer.dropout,
                    layer_key(net, training_step, l));
  }
  ws.pending_batch.largest = nullptr;  // not past this call
  return ws.post.back().data();
}

// The epilogue of a product into layer `target`'s delta: the layer's derivative when that
// product is the last into it (`last`) and the derivative goes into the write-back.
template <typename T>
GemmEpilogue<T> delta_epilogue(const NetworkSpec<T>& net, Workspace<T>& ws, std::size_t target,
                               index_t m, bool last) {
  if (!last || !derivative_in_write_back(net, ws, target, m)) return GemmEpilogue<T>{};
  return GemmEpilogue<T>::backward(net.layers[target].act, pre_activation(net, ws, target),
                                   ws.post[target].data(), net.layers[target].fan_out);
}

// This thread's buffer for `count` values of a weight gradient (backward_in_one_region), grown
// once and reused by every layer and step.
template <typename T>
T* thread_gradient_buffer(index_t count) {
  thread_local AlignedBuffer<T> buffer;
  return buffer.reserve(std::size_t(count));
}

// Whether a thread's rows of a layer's weight gradient go to its own buffer instead of the
// grads buffer: when the update writes them as it takes them, so nothing reads them after, and
// they are small enough to stay in this core's L2 cache (kThreadGradientMaxBytes) until the
// update reads them. The grads buffer's lines are then neither fetched for writing nor written
// back each step. Epochs on two Xeon threads, alternated rounds against the build before: deep
// (each thread's rows 128 KiB) faster in 16 of 18, median about +3% (-2.8% to +8.8%); in a
// build timing each phase, its step 1,186-1,224 -> 1,123-1,159 us, the weight gradients'
// products 4-10% faster. mnist (its second layer's rows 512 KiB) and tiny (196 KiB) within the
// noise. The bits are the same.
template <typename T>
bool gradient_in_thread_buffer(const EarlyUpdate<T>* update, index_t count) {
  return update != nullptr && update->writes_as_taken() &&
         count * index_t(sizeof(T)) <= kThreadGradientMaxBytes;
}

// How many layers' backward steps have run in one region (mlp_backward_region_count), and
// how many threads' rows of a weight gradient went to their own buffers
// (mlp_thread_gradient_count).
std::atomic<std::uint64_t> backward_regions{0};
std::atomic<std::uint64_t> thread_gradients{0};

// A multiple of every tile family's NR (config.hpp): column slabs that start on it give each
// entry of C the panels, and so the sums, of the whole product.
constexpr index_t kSlabColumns = 32;
static_assert(kSlabColumns % GemmBlocking512<float>::NR == 0 &&
                  kSlabColumns % GemmBlocking512<double>::NR == 0 &&
                  kSlabColumns % GemmBlocking<float>::NR == 0 &&
                  kSlabColumns % GemmBlocking<double>::NR == 0,
              "slabs start on column panel boundaries");

// A layer's weight gradient dW = X^T D (its rows split over the threads), bias gradient
// (columns split) and the source's delta dX = D W^T (+ beta dX, then the epilogue; columns
// split) in one parallel region, each thread's share a one-thread product, instead of two
// split GEMMs and a bias pass, each a region of its own: one join instead of two, where most of
// a join's cost is waiting for the thread whose half ended later.
// Taken when the products split over the threads anyway (from the burst threshold) and stay
// below the shared-block size, where every path splits them into slabs. dx is null for a layer
// that reads the network's input (no delta to pass on). Returns false, having done nothing,
// when not taken or when the burst rule gives the call one thread: the caller then runs the
// products one after the other, each taking its own threads.
// The bits are those of the separate calls: an entry of C gets the same sums in any row
// slab, and in a column slab that starts on a column panel's boundary (gemm_register_tile.hpp).
// Two Xeon threads, three alternated rounds each, samples/s: deep's epochs 42.3k-42.8k ->
// 43.5k-44.2k and (a second pair of builds) 43.9k-46.1k -> 43.2k-47.6k, its train_step
// 39.1k-40.3k -> 39.4k-41.0k and 40.8k-43.0k -> 41.4k-43.5k; mnist's epochs 57.2k-57.7k ->
// 58.0k-58.4k and 59.4k-60.6k -> 60.1k-63.6k, train_step the same, then 54.8k-58.0k ->
// 56.0k-59.3k. The first layer's weight and bias gradients in one region too (no dX): deep's
// epochs 43.2k-44.9k -> 44.4k-45.2k, train_step 40.3k-41.4k -> 41.4k-41.8k, tiny's +1%,
// mnist's within the noise.
// With an early update (EarlyUpdate), each thread then takes the update of the rows of W whose
// gradient it has just written (when there is a dX, the rows it read for its columns of dX) and
// of its columns of b: a proven update writes them, which no other thread reads or writes in the
// region; a checked one reads them while they are in this thread's cache. A proven update's
// rows of dW may go to the thread's own buffer instead of dw (gradient_in_thread_buffer).
template <typename T>
bool backward_in_one_region(const T* source, index_t width, const T* delta, index_t m,
                            index_t fan_out, const T* w, T* dw, T* db, T beta, T* dx,
                            const GemmEpilogue<T>& epilogue, const EarlyUpdate<T>* update,
                            index_t w_offset, index_t b_offset) {
  const double work = double(m) * double(width) * double(fan_out);
  if (get_num_threads() < 2 || work < double(gemm_burst_min_flops<T>()) ||
      work >= double(kGemmSharedMinFlops))
    return false;
  const TeamCall team(get_num_threads(), work < double(gemm_parallel_min_flops<T>()));
  if (team.count() < 2) return false;
  backward_regions.fetch_add(1, std::memory_order_relaxed);
  const index_t slabs = (width + kSlabColumns - 1) / kSlabColumns;
  // A dX of fewer slabs than threads would leave a thread no rows of dW to write and update:
  // the update then comes after the region, split evenly.
  const bool update_in_region = update != nullptr && (dx == nullptr || slabs >= team.count());
  team.run([&](int part, int parts) {
    const Share mine(slabs, part, parts);
    const index_t first = std::min(width, mine.first * kSlabColumns);
    const index_t last = std::min(width, mine.last * kSlabColumns);
    // beta 0: each row of dW is written exactly once. With an early update, the rows of W this
    // thread reads for dX, so that it may update them (no other thread reads them) or check
    // them while they are in its cache.
    const Share even_rows(width, part, parts);
    const bool rows_of_dx = update_in_region && dx != nullptr;
    const index_t row_first = rows_of_dx ? first : even_rows.first;
    const index_t row_last = rows_of_dx ? last : even_rows.last;
    const index_t dw_count = (row_last - row_first) * fan_out;
    const bool own_buffer =
        update_in_region && dw_count > 0 && gradient_in_thread_buffer(update, dw_count);
    T* const dw_rows = own_buffer ? thread_gradient_buffer<T>(dw_count) : dw + row_first * fan_out;
    if (own_buffer) thread_gradients.fetch_add(1, std::memory_order_relaxed);
    if (row_first < row_last)
      gemm<T>(true, false, row_last - row_first, fan_out, m, T(1), source + row_first, width,
              delta, fan_out, T(0), dw_rows, fan_out);
    const Share columns(fan_out, part, parts);
    std::fill(db + columns.first, db + columns.last, T(0));
    bias_grad_columns(db + columns.first, delta + columns.first, m,
                      columns.last - columns.first, fan_out);
    if (dx != nullptr && first < last)
      gemm_fused<T>(false, true, m, last - first, fan_out, T(1), delta, fan_out,
                    w + first * fan_out, fan_out, beta, dx + first, width,
                    epilogue.shifted(0, first));
    if (update_in_region) {
      update->take(w_offset + row_first * fan_out, dw_count, own_buffer ? dw_rows : nullptr);
      update->take(b_offset + columns.first, columns.last - columns.first);
    }
  });
  if (update != nullptr && !update_in_region)
    update->take_on_threads(w_offset, width * fan_out + fan_out);  // W, then b
  return true;
}

template <typename T>
void mlp_backprop(const NetworkSpec<T>& net, const T* params, const T* x, index_t m,
                  Workspace<T>& ws, T* grads, const EarlyUpdate<T>* update) {
  // from D_L in grad_post.back(), for l from L down: D_l = dLoss/dX_l * f'(U_l) (in place);
  // dW_l = [X_s]^T D_l; db_l = colsum(D_l); dLoss/dX_s += D_l W_s^T for each source layer s
  const std::size_t n_layers = net.layers.size();
  std::fill(ws.grad_written.begin(), ws.grad_written.end(), char(0));
  ws.grad_written.back() = 1;
  for (std::size_t l = n_layers; l-- > 0;) {
    const LayerSpec<T>& layer = net.layers[l];
    T* delta = ws.grad_post[l].data();
    if (!ws.grad_written[l]) {
      // No later layer reads this one: its delta is zero.
      std::fill(delta, delta + m * layer.fan_out, T(0));
    } else if (l + 1 < n_layers) {
      // Through the dropout mask (the same draw as the forward), then the activation.
      if (dropout_on(net, ws, l))
        apply_dropout(delta, delta, m * layer.fan_out, layer.dropout,
                      layer_key(net, ws.dropout_step, l));
      if (!derivative_in_write_back(net, ws, l, m))
        activation_backward(delta, delta, pre_activation(net, ws, l), ws.post[l].data(),
                            m * layer.fan_out, layer.act);
    }
    const T* w = params + net.weight_offset(l);
    const int only_source = layer.sources.size() == 1 ? layer.sources[0] : -1;
    if (grads != nullptr && only_source >= 0) {
      T* dx = nullptr;  // the input needs no gradient
      T beta = T(0);
      GemmEpilogue<T> epilogue;
      if (only_source > 0) {
        const std::size_t target = std::size_t(only_source - 1);
        dx = ws.grad_post[target].data();
        beta = ws.grad_written[target] ? T(1) : T(0);
        // this layer lists the target once: its product is the last into it if it is the
        // target's first reader
        epilogue = delta_epilogue(net, ws, target, m, first_consumer(net, target) == l);
      }
      if (backward_in_one_region(source_rows(net, ws, x, only_source),
                                 net.source_width(only_source), delta, m, layer.fan_out, w,
                                 grads + net.weight_offset(l), grads + net.bias_offset(l), beta,
                                 dx, epilogue, update, net.weight_offset(l),
                                 net.bias_offset(l))) {
        if (only_source > 0) ws.grad_written[std::size_t(only_source - 1)] = 1;
        continue;
      }
    }
    index_t row = 0;
    for (auto source = layer.sources.begin(); source != layer.sources.end(); ++source) {
      const int s = *source;
      const index_t width = net.source_width(s);
      if (grads != nullptr)  // beta 0: each block of rows of dW is written exactly once
        gemm<T>(true, false, width, layer.fan_out, m, T(1), source_rows(net, ws, x, s), width,
                delta, layer.fan_out, T(0), grads + net.weight_offset(l) + row * layer.fan_out,
                layer.fan_out);
      if (s > 0) {  // the input needs no gradient
        const std::size_t target = std::size_t(s - 1);
        const T beta = ws.grad_written[target] ? T(1) : T(0);
        // The last product into the target's delta may apply its derivative: the first layer
        // that reads it, at its last reading (a layer may list a source twice).
        const bool last_into_target =
            first_consumer(net, target) == l &&
            std::find(std::next(source), layer.sources.end(), s) == layer.sources.end();
        const GemmEpilogue<T> epilogue = delta_epilogue(net, ws, target, m, last_into_target);
        gemm_fused<T>(false, true, m, width, layer.fan_out, T(1), delta, layer.fan_out,
                      w + row * layer.fan_out, layer.fan_out, beta, ws.grad_post[target].data(),
                      width, epilogue);
        ws.grad_written[target] = 1;
      }
      row += width;
    }
    if (grads != nullptr) {
      T* db = grads + net.bias_offset(l);
      std::fill(db, db + layer.fan_out, T(0));
      bias_grad(db, delta, m, layer.fan_out);
    }
    // The layer's products have read W for the last time in this step: W and b (consecutive
    // in the buffer) may take their update.
    if (update != nullptr)
      update->take_on_threads(net.weight_offset(l), layer.fan_in * layer.fan_out + layer.fan_out);
  }
}

namespace {

constexpr double kInfinity = std::numeric_limits<double>::infinity();
constexpr double kSlack = 1.0 + 1e-5;  // above a few roundings in float: (1 + 2^-24)^20

// The unit roundoff of T.
template <typename T>
constexpr double unit_roundoff() {
  return 0.5 * double(std::numeric_limits<T>::epsilon());
}

// The largest magnitude in source s as the products read it (+inf when one is not finite): as
// the forward's write-back recorded it, or the copy of a scattered batch, or from a scan. (Under
// dropout the products read the dropped copy, which the write-back did not write.)
template <typename T>
double largest_source_value(const NetworkSpec<T>& net, const Workspace<T>& ws, const T* x,
                            index_t m, int s) {
  // (the copy's only when the products read it: a forward that threw would leave a stale one)
  if (s == 0 && ws.batch_bound >= 0.0 && x == ws.batch_x.data()) return ws.batch_bound;
  if (s > 0) {
    const std::size_t l = std::size_t(s - 1);
    if (ws.output_bound[l] >= 0.0 && !dropout_on(net, ws, l)) return ws.output_bound[l];
  }
  return largest_magnitude(source_rows(net, ws, x, s), m * net.source_width(s));
}

// Records in ws.input_bound each layer's largest input (at least 1, the bias's) over its sources
// as its products read them: +inf when one is not finite.
template <typename T>
void record_layer_inputs(const NetworkSpec<T>& net, const T* x, index_t m, Workspace<T>& ws) {
  for (std::size_t l = 0; l < net.layers.size(); ++l) {
    double input = 1.0;
    for (const int s : net.layers[l].sources)
      input = std::max(input, largest_source_value(net, ws, x, m, s));
    ws.input_bound[l] = input;
  }
}

// A bound on every gradient entry from the largest product of a layer's largest input and
// largest delta (mlp_gradient_bound's documentation says why).
template <typename T>
double gradient_bound_from(index_t m, double largest) {
  const double rounding = 1.0 - double(m + 5) * unit_roundoff<T>();
  if (!(rounding >= 0.5) || std::isnan(largest)) return kInfinity;
  const double underflow = 0.5 * double(std::numeric_limits<T>::denorm_min());
  return (largest + underflow) * double(m) / rounding;
}

// How many terms the sums into layer l's dLoss/dX_l add over all its readers: each reading adds
// fan_out products to the sum so far.
template <typename T>
index_t reader_terms(const NetworkSpec<T>& net, std::size_t l) {
  index_t terms = 0;
  for (std::size_t later = l + 1; later < net.layers.size(); ++later)
    for (const int s : net.layers[later].sources)
      if (std::size_t(s) == l + 1) terms += net.layers[later].fan_out + 1;
  return terms;
}

// The largest |derivative| a hidden activation's kernels give for a finite U and f(U)
// (activations.cpp): gelu's is 1.129 (at u = sqrt 2; rounded up to 1.2 for its approximations);
// relu, identity and leaky_relu select 1 or alpha; elu's y + alpha lies between 0 and alpha;
// sigmoid's y (1 - y), tanh's 1 - y^2 and softplus's sigmoid(u) are at most 1 up to a rounding.
template <typename T>
double derivative_bound(const ActivationParams<T>& act) {
  if (act.kind == Activation::gelu) return 1.2;
  return std::max(1.0, std::abs(double(act.alpha)));
}

}  // namespace

template <typename T>
double mlp_gradient_bound(const NetworkSpec<T>& net, const T* x, index_t m, Workspace<T>& ws) {
  record_layer_inputs(net, x, m, ws);
  return mlp_gradient_bound_from_deltas(net, m, ws);
}

template <typename T>
double mlp_gradient_bound_from_deltas(const NetworkSpec<T>& net, index_t m,
                                      const Workspace<T>& ws) {
  double largest = 0.0;
  for (std::size_t l = 0; l < net.layers.size(); ++l) {
    const double delta = largest_magnitude(ws.grad_post[l].data(), m * net.layers[l].fan_out);
    const double term = delta * ws.input_bound[l];  // NaN when Inf meets 0
    if (std::isnan(term)) return kInfinity;
    largest = std::max(largest, term);
  }
  return gradient_bound_from<T>(m, largest);
}

template <typename T>
double mlp_gradient_bound_before_backward(const NetworkSpec<T>& net, const T* x, index_t m,
                                          Workspace<T>& ws, double weight_bound) {
  const std::size_t n_layers = net.layers.size();
  const double u = unit_roundoff<T>();
  const double underflow = double(std::numeric_limits<T>::denorm_min());
  record_layer_inputs(net, x, m, ws);
  std::fill(ws.delta_bound.begin(), ws.delta_bound.end(), 0.0);
  ws.delta_bound.back() = largest_magnitude(ws.grad_post.back().data(), m * net.n_outputs());
  double largest = 0.0;
  for (std::size_t l = n_layers; l-- > 0;) {
    const LayerSpec<T>& layer = net.layers[l];
    double& delta = ws.delta_bound[l];  // on entry, of dLoss/dX_l from the layers that read it
    const index_t terms = reader_terms(net, l);  // 0: no layer reads it, and its delta is 0
    if (l + 1 < n_layers && terms > 0) {
      // The derivative reads U_l and X_l. X_l as its readers took it is finite (their input
      // bounds, checked above); with dropout they took the dropped copy, so check X_l itself.
      const index_t count = m * layer.fan_out;
      const T* u_l = pre_activation(net, ws, l);
      const T* x_l = ws.post[l].data();
      if (dropout_on(net, ws, l) && !std::isfinite(largest_magnitude(x_l, count)))
        return kInfinity;
      if (u_l != x_l && !std::isfinite(largest_magnitude(u_l, count))) return kInfinity;
      // delta bounds the exact sum of the readers' products' magnitudes (below). Those products
      // and the sums into dLoss/dX_l, in any order and blocking, and each reader's sum added to
      // the last ones' (beta 1), round each product through at most k additions, k the terms
      // over all readers: within a factor 1 / (1 - k u); + 5 covers this arithmetic in double.
      const double rounding = 1.0 - double(terms + 5) * u;
      if (!(rounding >= 0.5)) return kInfinity;
      // Then the mask's scale (rounded to T) and the derivative, each product rounded once:
      // (1 + u)^3 is well inside kSlack; where they underflow, the first product's absolute
      // error, times the derivative, and the second's stay below (1 + derivative) subnormals.
      const double scale = dropout_on(net, ws, l) ? 1.0 / (1.0 - layer.dropout) : 1.0;
      const double derivative = derivative_bound(layer.act);
      delta = delta * kSlack * scale * derivative / rounding + (1.0 + derivative) * underflow;
    }
    const double term = delta * ws.input_bound[l];
    if (std::isnan(term)) return kInfinity;
    largest = std::max(largest, term);
    // dLoss/dX_s += D_l W_s^T: fan_out products, each at most delta x weight_bound, plus the
    // smallest subnormal for the absolute rounding of a product and a sum that underflow.
    for (const int s : layer.sources)
      if (s > 0)
        ws.delta_bound[std::size_t(s - 1)] +=
            double(layer.fan_out) * (delta * weight_bound + underflow);
  }
  return gradient_bound_from<T>(m, largest);
}

template <typename T>
bool mlp_forward_splits_weights_by_rows(const NetworkSpec<T>& net, index_t m) {
  bool any = false;
  for (const LayerSpec<T>& layer : net.layers)
    for (const int s : layer.sources) {
      const index_t width = net.source_width(s);
      const double work = double(m) * double(layer.fan_out) * double(width);
      if (work < double(gemm_burst_min_flops<T>())) continue;  // on one thread
      if (forward_split(m, width) != GemmSplit::k_blocks) return false;
      any = true;
    }
  return any;
}

template <typename T>
index_t mlp_gradient_bound_reads(const NetworkSpec<T>& net, index_t m) {
  index_t values = 0;
  for (const LayerSpec<T>& layer : net.layers) {
    values += layer.fan_out;
    for (const int s : layer.sources) values += net.source_width(s);
  }
  return m * values;
}

std::uint64_t mlp_backward_region_count() {
  return backward_regions.load(std::memory_order_relaxed);
}

std::uint64_t mlp_thread_gradient_count() {
  return thread_gradients.load(std::memory_order_relaxed);
}

template <typename T>
void mlp_output_delta(const NetworkSpec<T>& net, const T* y, const T* row_weight, index_t m,
                      Workspace<T>& ws) {
  const LayerSpec<T>& last = net.layers.back();
  loss_backward(ws.grad_post.back().data(), net.loss, net.reduction, ws.pre.back().data(),
                ws.post.back().data(), y, row_weight, m, last.fan_out, net.output);
}

template <typename T>
void mlp_backward(const NetworkSpec<T>& net, const T* params, const T* x, const T* y,
                  const T* row_weight, index_t m, Workspace<T>& ws, T* grads) {
  // D_L = dLoss/dU_L, then backpropagated through every layer into grads
  mlp_output_delta(net, y, row_weight, m, ws);
  mlp_backprop(net, params, x, m, ws, grads);
}

#define BACKPROP_INSTANTIATE_MLP(T)                                                           \
  template struct NetworkSpec<T>;                                                             \
  template struct Workspace<T>;                                                               \
  template void copy_listed_rows<T>(const ListedRows<T>&, int, int);                          \
  template void copy_listed_rows<T>(const ListedRows<T>&);                                    \
  template const T* mlp_forward<T>(const NetworkSpec<T>&, const T*, const T*, index_t,         \
                                   Workspace<T>&, index_t);                                            \
  template void mlp_backward<T>(const NetworkSpec<T>&, const T*, const T*, const T*,           \
                                const T*, index_t, Workspace<T>&, T*);                        \
  template void mlp_output_delta<T>(const NetworkSpec<T>&, const T*, const T*, index_t,        \
                                    Workspace<T>&);                                             \
  template void mlp_backprop<T>(const NetworkSpec<T>&, const T*, const T*, index_t,             \
                                Workspace<T>&, T*, const EarlyUpdate<T>*);                      \
  template double mlp_gradient_bound<T>(const NetworkSpec<T>&, const T*, index_t,               \
                                        Workspace<T>&);                                         \
  template double mlp_gradient_bound_from_deltas<T>(const NetworkSpec<T>&, index_t,             \
                                                    const Workspace<T>&);                       \
  template double mlp_gradient_bound_before_backward<T>(const NetworkSpec<T>&, const T*,        \
                                                        index_t, Workspace<T>&, double);        \
  template index_t mlp_gradient_bound_reads<T>(const NetworkSpec<T>&, index_t);              \
  template bool mlp_forward_splits_weights_by_rows<T>(const NetworkSpec<T>&, index_t);
BACKPROP_INSTANTIATE_MLP(float)
BACKPROP_INSTANTIATE_MLP(double)
#undef BACKPROP_INSTANTIATE_MLP

}  // namespace backprop
