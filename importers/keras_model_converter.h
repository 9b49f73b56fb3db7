// ConvertKerasModel: a Keras model (its config read as a chain of layers,
// its weights by name) as our model schema, validated. The last step of
// every Keras importer (TF.js, .keras, .h5), whatever file the config and
// weights came from.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "biserve/v1/model.pb.h"
#include "importers/keras_layer.h"
#include "importers/keras_model_config.h"
#include "importers/weight_map.h"

namespace biserve::importers {

// Converts `config`'s layers in order (ConvertKerasLayer), names the model
// `model_name`, and returns it if it uses every weight of `weights` and
// validates as Model::Create would, with as many initial-state inputs as
// its first Bidirectional layer has states. Errors are INVALID_ARGUMENT
// naming `where` (the file) or the layer, or Model::Create's own code.
absl::StatusOr<v1::Model> ConvertKerasModel(const KerasModelConfig& config,
                                            KerasFlavour flavour,
                                            WeightMap& weights,
                                            const std::string& model_name,
                                            absl::string_view where);

}  // namespace biserve::importers
