#include "importers/keras_weight_names.h"

#include <cstdint>
#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "importers/import_error.h"
#include "importers/json_fields.h"

namespace biserve::importers {
namespace {

using google::protobuf::Struct;

// Row-major [rows, cols] view helpers over Weight.
int64_t Rows(const Weight& w) { return w.shape.size() == 2 ? w.shape[0] : 0; }
int64_t Cols(const Weight& w) { return w.shape.size() == 2 ? w.shape[1] : 0; }

// Concatenates 2-D (or 1-D) arrays along their last axis, in `order`.
absl::StatusOr<Weight> ConcatLastAxis(const std::vector<Weight>& arrays,
                                      const std::vector<int>& order,
                                      absl::string_view where) {
  Weight out;
  const Weight& first = arrays[order[0]];
  const bool matrix = first.shape.size() == 2;
  const int64_t rows = matrix ? first.shape[0] : 1;
  int64_t cols = 0;
  for (int i : order) {
    const Weight& a = arrays[i];
    if (a.shape.size() != first.shape.size() || (matrix && Rows(a) != rows) ||
        a.shape.empty()) {
      return Invalid(where, "Keras 1 gate arrays of different shapes");
    }
    cols += a.shape.back();
  }
  out.shape =
      matrix ? std::vector<int64_t>{rows, cols} : std::vector<int64_t>{cols};
  out.values.reserve(rows * cols);
  for (int64_t r = 0; r < rows; ++r) {
    for (int i : order) {
      const Weight& a = arrays[i];
      const int64_t c = a.shape.back();
      out.values.insert(out.values.end(), a.values.begin() + r * c,
                        a.values.begin() + (r + 1) * c);
    }
  }
  return out;
}

// Keras 1 stored each gate apart: W_x, U_x, b_x per gate, LSTM gates in
// the order i, c, f, o (12 arrays) and GRU's z, r, h (9); Keras 2 concatenates
// them as i, f, c, o and z, r, h.
absl::StatusOr<std::vector<Weight>> FromKeras1(
    const std::vector<Weight>& arrays, absl::string_view where) {
  const bool lstm = arrays.size() == 12;
  const std::vector<int> gates =
      lstm ? std::vector<int>{0, 2, 1, 3} : std::vector<int>{0, 1, 2};
  std::vector<Weight> out;
  for (int part = 0; part < 3; ++part) {  // W, U, b
    std::vector<int> order;
    for (int g : gates) order.push_back(3 * g + part);
    absl::StatusOr<Weight> joined = ConcatLastAxis(arrays, order, where);
    if (!joined.ok()) return joined.status();
    out.push_back(*std::move(joined));
  }
  return out;
}

// Keras' transform_kernels for cuDNN weights: each gate's column block
// (rows x units) replaced by f(block), `transpose_input` choosing
// k.T.reshape(k.shape, order='F') (kernel) over k.T (recurrent kernel).
Weight CudnnKernel(const Weight& k, int gates, bool input_kernel) {
  Weight out = k;
  const int64_t rows = Rows(k), cols = Cols(k), units = cols / gates;
  for (int g = 0; g < gates; ++g) {
    for (int64_t c = 0; c < rows; ++c) {
      for (int64_t d = 0; d < units; ++d) {
        int64_t src_row, src_col;
        if (input_kernel) {
          // new[c][d] = k.T in Fortran order: flat index f = c + rows * d
          // of the (units x rows) k.T, i.e. k[f / units][f % units].
          const int64_t f = c + rows * d;
          src_row = f / units;
          src_col = f % units;
        } else {
          src_row = d;
          src_col = c;
        }
        out.values[c * cols + g * units + d] =
            k.values[src_row * cols + g * units + src_col];
      }
    }
  }
  return out;
}

// A cuDNN direction's [kernel, recurrent_kernel, bias] as LSTM's or GRU's
// (reset_after); `arrays` is returned unchanged unless its bias has cuDNN's
// size (two biases per gate, 1-D), as Keras' _convert_rnn_weights decides.
std::vector<Weight> FromCudnn(std::vector<Weight> arrays, int gates) {
  if (arrays.size() != 3) return arrays;
  const Weight& recurrent = arrays[1];
  const int64_t units = Rows(recurrent);
  const Weight& bias = arrays[2];
  if (units == 0 || Cols(arrays[0]) != gates * units ||
      Cols(recurrent) != gates * units || Rows(arrays[0]) == 0 ||
      bias.shape.size() != 1 || bias.shape[0] != 2 * gates * units) {
    return arrays;
  }
  arrays[0] = CudnnKernel(arrays[0], gates, /*input_kernel=*/true);
  arrays[1] = CudnnKernel(arrays[1], gates, /*input_kernel=*/false);
  Weight merged;
  if (gates == 4) {
    merged.shape = {gates * units};
    for (int64_t i = 0; i < gates * units; ++i) {
      merged.values.push_back(bias.values[i] + bias.values[i + gates * units]);
    }
  } else {
    merged.shape = {2, gates * units};
    merged.values = bias.values;
  }
  arrays[2] = std::move(merged);
  return arrays;
}

// One direction of a Bidirectional layer, converted to Keras 2's three (or
// two, without bias) arrays.
absl::StatusOr<std::vector<Weight>> Direction(const std::string& cell,
                                              std::vector<Weight> arrays,
                                              absl::string_view where) {
  if ((cell == "LSTM" && arrays.size() == 12) ||
      (cell == "GRU" && arrays.size() == 9)) {
    return FromKeras1(arrays, where);
  }
  if (cell == "LSTM") return FromCudnn(std::move(arrays), 4);
  if (cell == "GRU") return FromCudnn(std::move(arrays), 3);
  return arrays;
}

absl::Status AddNamed(const std::string& prefix,
                      const std::vector<std::string>& leaves,
                      std::vector<Weight> arrays, absl::string_view where,
                      WeightMap& weights) {
  if (arrays.size() > leaves.size()) {
    return Invalid(where, absl::StrCat("the file holds ", arrays.size(),
                                       " weight arrays for it; expected at "
                                       "most ",
                                       leaves.size()));
  }
  for (size_t i = 0; i < arrays.size(); ++i) {
    weights[absl::StrCat(prefix, "/", leaves[i])] = std::move(arrays[i]);
  }
  return absl::OkStatus();
}

absl::Status AddBidirectional(const KerasLayer& layer,
                              std::vector<Weight> arrays, WeightMap& weights) {
  const std::string where = layer.Label();
  if (arrays.size() % 2 != 0) {
    return Invalid(where, absl::StrCat("the file holds ", arrays.size(),
                                       " weight arrays for it; a "
                                       "Bidirectional layer has as many "
                                       "backward as forward"));
  }
  const Struct* inner = GetObject(*layer.config, "layer");
  const std::string cell =
      inner == nullptr ? "" : GetString(*inner, "class_name").value_or("");
  const size_t half = arrays.size() / 2;
  std::vector<Weight> backward(std::make_move_iterator(arrays.begin() + half),
                               std::make_move_iterator(arrays.end()));
  arrays.resize(half);
  const std::vector<std::string> leaves = {"kernel", "recurrent_kernel",
                                           "bias"};
  int index = 0;
  for (std::vector<Weight>* direction : {&arrays, &backward}) {
    absl::StatusOr<std::vector<Weight>> converted =
        Direction(cell, std::move(*direction), where);
    if (!converted.ok()) return converted.status();
    const std::string prefix =
        absl::StrCat(layer.name, index++ == 0 ? "/forward_layer/cell"
                                              : "/backward_layer/cell");
    if (absl::Status s =
            AddNamed(prefix, leaves, *std::move(converted), where, weights);
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

// The weight names of layers the converters take by Keras' names, in
// Keras' order; nullopt for a kind not listed.
std::optional<std::vector<std::string>> KnownLeaves(
    const std::string& class_name, const Struct& config) {
  if (class_name == "Dense") return std::vector<std::string>{"kernel", "bias"};
  if (class_name == "Embedding") return std::vector<std::string>{"embeddings"};
  if (class_name == "BatchNormalization" ||
      class_name == "LayerNormalization") {
    std::vector<std::string> leaves;
    if (GetBool(config, "scale").value_or(true)) leaves.push_back("gamma");
    if (GetBool(config, "center").value_or(true)) leaves.push_back("beta");
    if (class_name == "BatchNormalization") {
      leaves.push_back("moving_mean");
      leaves.push_back("moving_variance");
    }
    return leaves;
  }
  return std::nullopt;
}

// A name for each array of a layer kind biserve does not know: the leaf of
// the name the file stores, or the array's index.
std::vector<std::string> FallbackLeaves(
    size_t count, const std::vector<std::string>& stored_names) {
  std::vector<std::string> leaves;
  for (size_t i = 0; i < count; ++i) {
    std::string leaf = absl::StrCat(i);
    if (i < stored_names.size()) {
      std::vector<std::string> parts = absl::StrSplit(stored_names[i], '/');
      leaf = absl::StrCat(i, "_", parts.back());
      if (absl::EndsWith(leaf, ":0")) leaf.resize(leaf.size() - 2);
    }
    leaves.push_back(leaf);
  }
  return leaves;
}

}  // namespace

absl::Status AddLayerWeights(const KerasLayer& layer,
                             std::vector<Weight> arrays,
                             const std::vector<std::string>& stored_names,
                             WeightMap& weights) {
  if (arrays.empty()) return absl::OkStatus();
  if (layer.class_name == "Bidirectional") {
    return AddBidirectional(layer, std::move(arrays), weights);
  }
  if (layer.config == nullptr) {  // a layer the config does not list
    return AddNamed(layer.name, FallbackLeaves(arrays.size(), stored_names),
                    std::move(arrays), layer.Label(), weights);
  }
  // TimeDistributed owns its wrapped layer's weights, under its own name.
  std::string class_name = layer.class_name;
  const Struct* config = layer.config;
  if (class_name == "TimeDistributed") {
    const Struct* inner = GetObject(*layer.config, "layer");
    if (inner != nullptr) {
      class_name = GetString(*inner, "class_name").value_or("");
      const Struct* inner_config = GetObject(*inner, "config");
      if (inner_config != nullptr) config = inner_config;
    }
  }
  std::optional<std::vector<std::string>> leaves =
      KnownLeaves(class_name, *config);
  return AddNamed(layer.name,
                  leaves.has_value()
                      ? *leaves
                      : FallbackLeaves(arrays.size(), stored_names),
                  std::move(arrays), layer.Label(), weights);
}

}  // namespace biserve::importers
