// ImportTfjsLayersModel: a Keras model in the TensorFlow.js Layers format
// (model.json plus binary weight shards) as a biserve model.
//
// Both flavours of model.json load: tensorflowjs_converter's (the Keras
// config under modelTopology.model_config, Keras 2 layer entries, shards
// named group1-shard1of1.bin) and TensorFlow.js' own model.save
// (modelTopology is the config itself, weights.bin). Weights are matched to
// layers by name, never by position: the converter lists them sorted by
// name, not in model order.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "biserve/v1/model.pb.h"

namespace biserve {

struct TfjsImportOptions {
  // The model's name; empty keeps the Keras model's own name.
  std::string model_name;
};

// Reads `model_json_path` and the shards its weights manifest names (paths
// relative to the model.json's folder), and returns the model, validated as
// Model::Create would. Errors name the Keras layer and option:
// INVALID_ARGUMENT for what biserve does not support or a malformed file,
// NOT_FOUND for a missing file, DATA_LOSS for a shard shorter or longer than
// its manifest says.
absl::StatusOr<v1::Model> ImportTfjsLayersModel(
    const std::string& model_json_path, const TfjsImportOptions& options);

}  // namespace biserve
