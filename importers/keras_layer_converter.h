// ConvertKerasLayer: one computing layer of a Keras model config as a layer
// of our model schema, with its weights taken from a WeightMap. The layer
// kinds biserve imports: Masking, Embedding, Bidirectional over LSTM, GRU
// or SimpleRNN (with or without a backward_layer of its own), Dense and
// TimeDistributed(Dense). Any Keras importer (TF.js, .keras, .h5) feeds its
// layers through here.
#pragma once

#include "absl/status/statusor.h"
#include "biserve/v1/model.pb.h"
#include "importers/keras_layer.h"
#include "importers/weight_map.h"

namespace biserve::importers {

// Converts `layer`, which is neither an InputLayer nor an inference no-op
// (see keras_layer.h), taking its weights from `weights` by name.
// INVALID_ARGUMENT, naming the layer and option, for a kind or option
// biserve does not support, or a weight that is missing or ambiguous.
absl::StatusOr<v1::Layer> ConvertKerasLayer(const KerasLayer& layer,
                                            WeightMap& weights,
                                            KerasFlavour flavour);

}  // namespace biserve::importers
