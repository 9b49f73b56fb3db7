// The Keras layers around the recurrent core that keep a sequence's steps
// apart or pool them: Activation, BatchNormalization, LayerNormalization,
// GlobalMaxPooling1D and GlobalAveragePooling1D, plus the layers that are
// identities at inference (Dropout and its kin, Flatten of a vector).
// Any Keras importer (TF.js, .keras, .h5) feeds its layers through here, by
// way of ConvertKerasModel.
#pragma once

#include <optional>

#include "absl/status/statusor.h"
#include "biserve/v1/model.pb.h"
#include "importers/keras_layer.h"
#include "importers/weight_map.h"

namespace biserve::importers {

// Dropout, SpatialDropout1D, GaussianNoise, GaussianDropout and
// AlphaDropout: random only in training, identities at inference, so they
// become no layer at all.
bool IsInferenceIdentity(const KerasLayer& layer);

// Whether ConvertExtraLayer converts `layer`'s class.
bool IsExtraLayer(const KerasLayer& layer);

// Whether the value `model`'s layers so far give has a time axis: true
// until a GlobalPooling or a Bidirectional without return_sequences.
bool OutputsSequence(const v1::Model& model);

// Converts `layer` (IsExtraLayer) on an input that is a sequence or not
// (`input_is_sequence`), taking its weights from `weights` by name
// (BatchNormalization: gamma, beta, moving_mean, moving_variance;
// LayerNormalization: gamma, beta). nullopt for a Flatten of a vector, a
// no-op. INVALID_ARGUMENT naming the layer and option for what biserve
// does not do: keepdims, channels_first, a normalization axis other than
// the features, Keras 3's rms_scaling, a Flatten of a sequence.
absl::StatusOr<std::optional<v1::Layer>> ConvertExtraLayer(
    const KerasLayer& layer, WeightMap& weights, KerasFlavour flavour,
    bool input_is_sequence);

}  // namespace biserve::importers
