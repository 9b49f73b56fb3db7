// KerasLayer: one entry of a Keras model config's "layers" list, as Keras 2,
// Keras 3 and TensorFlow.js write it ({"class_name", "config", "name",
// "inbound_nodes"}), and the facts about layer kinds that every Keras
// importer needs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/struct.pb.h"

namespace biserve::importers {

// Who wrote the config: they spell options and defaults differently (see
// keras_layer_options.h and keras_layer_converter.cc).
enum class KerasFlavour { kKeras2, kKeras3, kTfjs };

// From a model's "keras_version": "tfjs-layers ..." is TF.js, "3.x" Keras 3,
// anything else (or nothing) Keras 2.
KerasFlavour KerasFlavourFromVersion(absl::string_view keras_version);

struct KerasLayer {
  std::string class_name;
  std::string name;
  // Both point into the parsed JSON, which must outlive the layer.
  const google::protobuf::Struct* config = nullptr;
  const google::protobuf::Struct* entry = nullptr;  // inbound_nodes etc.

  // "layer '<name>' (<class_name>)", how errors name the layer.
  std::string Label() const;
};

// INVALID_ARGUMENT, naming `where`, unless `value` is an object with a
// class_name and a config. The name comes from the entry, else its config.
absl::StatusOr<KerasLayer> ParseKerasLayer(const google::protobuf::Value& value,
                                           absl::string_view where);

// Every entry of `list`, each parsed as ParseKerasLayer does with "layers[i]"
// for where.
absl::StatusOr<std::vector<KerasLayer>> ParseKerasLayers(
    const google::protobuf::ListValue& list);

bool IsInputLayer(const KerasLayer& layer);

// Dropout layers do nothing at inference.
bool IsInferenceNoOp(const KerasLayer& layer);

// The last dimension of an input shape, from an InputLayer's or a first
// layer's batch_input_shape (Keras 2, TF.js) or batch_shape (Keras 3);
// nullopt when absent or unknown.
std::optional<int> InputSize(const google::protobuf::Struct& config);

// The time dimension the same input shape declares: T of [None, T, F], or
// of [None, T] when `token_input` (the model starts with an Embedding);
// nullopt when absent, open (null) or not positive. Keras serves RNNs at any
// length whatever it says, and so does biserve: this is informational.
std::optional<int64_t> DeclaredTimeSteps(const google::protobuf::Struct& config,
                                         bool token_input);

}  // namespace biserve::importers
