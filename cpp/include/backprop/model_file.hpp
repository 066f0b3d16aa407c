// Reads the model files written by backprop.save (python/backprop/io.py) from C++, without zlib.
#pragma once

#include <string>
#include <vector>

#include "backprop/activations.hpp"
#include "backprop/losses.hpp"
#include "backprop/mlp.hpp"

namespace backprop {

// The newest model-file format version this reader understands.
constexpr long long kModelFileVersion = 1;

// A network read from a model file: its shape and its flat parameters (W_1, b_1, W_2, ...).
// spec.dropout_seed is 0: the file does not hold the seed Python derives dropout masks from, so
// dropout masks drawn here differ from Python's (inference, which never drops, is unaffected).
template <typename T>
struct ModelFile {
  NetworkSpec<T> spec;         // sources resolved; the last layer's activation is spec.output
  std::vector<T> params;       // spec.n_params() values, all finite
  std::string dtype;           // "float32" or "float64"
  long long version = 0;       // the file's format version, 1..kModelFileVersion
  bool has_optimizer = false;  // whether the file also holds optimizer state (not read here)
};

// The parameter dtype a model file declares ("float32" or "float64"), after checking the archive,
// its format name and version, and that its architecture is a JSON object, so the caller can
// pick T for load_model_file. Throws std::runtime_error naming the file and the problem.
std::string model_file_dtype(const std::string& path);

// Reads and checks a whole model file. Only uncompressed (stored) zip members are supported,
// which is what backprop.save and np.savez write. T must match the file's dtype. Every failure
// (missing or malformed member, other format, newer version, inconsistent architecture, wrong
// parameter count, NaN or Inf parameters, truncated or corrupt file) throws std::runtime_error
// with a one-line message that starts with the file's path.
template <typename T>
ModelFile<T> load_model_file(const std::string& path);

// The names the model file (and the Python API) uses for each choice.
const char* activation_name(Activation kind);
const char* loss_name(Loss loss);
const char* reduction_name(Reduction reduction);

}  // namespace backprop
