// KerasModelConfig: a Keras model config ({"class_name": "Sequential" or
// "Functional"/"Model", "config": {...}}) read as a name and a chain of
// layers. TF.js' model.json holds one under modelTopology; a .keras file's
// config.json and an .h5 file's model_config attribute are one.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/struct.pb.h"
#include "importers/keras_functional_chain.h"

namespace biserve::importers {

struct KerasModelConfig {
  std::string name;  // the Keras model's name; may be empty
  KerasChain chain;  // a Sequential's layers as listed
};

// Reads `model_config`. INVALID_ARGUMENT, naming `where` (the file), for a
// model class other than Sequential, Functional or Model, and for what
// ParseKerasLayers and FunctionalChain refuse.
absl::StatusOr<KerasModelConfig> ParseKerasModelConfig(
    const google::protobuf::Struct& model_config, absl::string_view where);

}  // namespace biserve::importers
