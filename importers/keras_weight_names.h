// AddLayerWeights: a layer's weight arrays, read from a Keras file in the
// layer's weight order, named as the layer converters look them up
// (weight_map.h). Keras' .h5 and .keras files are read by order, never by
// the names they store: real files carry stale names (a model saved as
// "sequential_3" whose weights say "sequential_6/..."), and .keras files
// name variables 0, 1, 2. The order is Keras' own: for Bidirectional the
// forward layer's kernel, recurrent kernel and bias, then the backward
// layer's.
//
// Weights Keras' loader converts are converted here the same way
// (preprocess_weights_for_loading; ../shared/real-models/LAYOUTS.md §1.6):
// Keras 1's 12 LSTM arrays per direction (9 for GRU) are concatenated, and
// CuDNNLSTM/CuDNNGRU kernels and biases become LSTM/GRU ones.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "importers/keras_layer.h"
#include "importers/weight_map.h"

namespace biserve::importers {

// Adds `arrays`, `layer`'s weights in Keras' order, to `weights` under the
// names the converters take them by (e.g. "<bidirectional>/forward_layer/
// cell/kernel"). `stored_names`, when the file has them (legacy .h5: one
// per array), name the arrays of layer kinds biserve does not know, so
// that an error about them reads as the file does; so are the arrays of a
// layer the config does not list (`layer.config` null), which then stay
// unused and fail the conversion. INVALID_ARGUMENT,
// naming the layer, for a number of arrays the layer cannot have.
absl::Status AddLayerWeights(const KerasLayer& layer,
                             std::vector<Weight> arrays,
                             const std::vector<std::string>& stored_names,
                             WeightMap& weights);

}  // namespace biserve::importers
