// WeightMap: a model file's weights by name, as Keras names them
// ("bidirectional/forward_lstm/lstm_cell/kernel", without the ":0"
// suffix), and how a layer converter takes its own out of them. Importers
// fill it from their format (TF.js shards, HDF5 datasets); the layer
// converters match weights by name, never by position.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "biserve/v1/model.pb.h"

namespace biserve::importers {

struct Weight {
  std::vector<int64_t> shape;
  std::vector<float> values;  // row-major, as Keras stores them
  bool used = false;          // taken by a layer (see TakeWeight)
};

// By name, without Keras' ":0" suffix.
using WeightMap = std::map<std::string, Weight>;

// Takes the weight named `prefix`/.../`leaf` (e.g. "bidirectional/forward"
// and "kernel" match "bidirectional/forward_lstm/lstm_cell/kernel") into
// the model's tensor field `out`, and marks it used. The prefix must end at
// a name boundary ("dense" does not match "dense_1/kernel"), except a
// prefix ending in "/forward" or "/backward" (Keras names the directions
// forward_<layer> and backward_<layer>). INVALID_ARGUMENT, naming `where`,
// when no weight or more than one matches.
absl::Status TakeWeight(WeightMap& weights, absl::string_view prefix,
                        absl::string_view leaf, absl::string_view where,
                        v1::Tensor* out);

// The first weight (by name) no layer took, if any: a file whose weights
// do not all belong to imported layers is not the model we think it is.
std::optional<std::string> FirstUnusedWeight(const WeightMap& weights);

}  // namespace biserve::importers
