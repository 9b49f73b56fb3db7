#include "importers/keras_model_converter.h"

#include <memory>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/model/model.h"
#include "importers/import_error.h"
#include "importers/keras_extra_layers.h"
#include "importers/keras_layer_converter.h"
#include "proto/model_codec.h"

namespace biserve::importers {
namespace {

// The model's input_dim, unless its first layer is an Embedding (token
// input): the input's feature size, which must be known.
absl::Status SetInputDim(std::optional<int> input_size, v1::Model& model) {
  const bool token_input =
      model.layers_size() > 0 && model.layers(0).has_embedding();
  if (token_input) return absl::OkStatus();
  if (!input_size.has_value() || *input_size <= 0) {
    return Invalid("model",
                   "the input's feature size is unknown; give the model "
                   "an input shape with a fixed last dimension");
  }
  model.set_input_dim(*input_size);
  return absl::OkStatus();
}

// Converts `layers`, in order, into a model's layers, input_dim and
// declared_time_steps (from the same input shape as the input_dim).
absl::StatusOr<v1::Model> ConvertLayers(const std::vector<KerasLayer>& layers,
                                        KerasFlavour flavour,
                                        WeightMap& weights) {
  v1::Model model;
  std::optional<int> input_size;
  // The config whose input shape gave input_size.
  const google::protobuf::Struct* input_config = nullptr;
  bool first = true;  // no computing layer seen yet
  int bidirectional_count = 0;
  for (const KerasLayer& layer : layers) {
    if (IsInputLayer(layer)) {
      if (!input_size.has_value()) {
        input_size = InputSize(*layer.config);
        input_config = layer.config;
      }
      continue;
    }
    if (first && !input_size.has_value()) {
      input_size = InputSize(*layer.config);
      input_config = layer.config;
    }
    if (IsInferenceNoOp(layer) || IsInferenceIdentity(layer)) continue;
    if (IsExtraLayer(layer)) {
      // These need to know whether their input has a time axis.
      absl::StatusOr<std::optional<v1::Layer>> extra =
          ConvertExtraLayer(layer, weights, flavour, OutputsSequence(model));
      if (!extra.ok()) return extra.status();
      if (extra->has_value()) *model.add_layers() = **std::move(extra);
      first = false;
      continue;
    }
    absl::StatusOr<v1::Layer> converted =
        ConvertKerasLayer(layer, weights, flavour);
    if (!converted.ok()) return converted.status();
    if (converted->has_bidirectional()) ++bidirectional_count;
    *model.add_layers() = *std::move(converted);
    first = false;
  }
  if (bidirectional_count == 0) {
    return Invalid("model", "has no Bidirectional layer");
  }
  if (absl::Status s = SetInputDim(input_size, model); !s.ok()) return s;
  if (input_config != nullptr && input_size.has_value()) {
    const bool token_input = model.layers(0).has_embedding();
    if (std::optional<int64_t> steps =
            DeclaredTimeSteps(*input_config, token_input)) {
      model.set_declared_time_steps(*steps);
    }
  }
  return model;
}

// Model::Create's checks, and that the model's initial-state inputs (if
// any) match its first Bidirectional layer's states.
absl::Status Validate(const v1::Model& model, int initial_state_inputs,
                      absl::string_view where) {
  absl::StatusOr<std::shared_ptr<const Model>> check =
      Model::Create(ModelSpecFromProto(model));
  if (!check.ok()) {
    return absl::Status(check.status().code(),
                        absl::StrCat("the converted model does not validate: ",
                                     check.status().message()));
  }
  const BidirectionalLayer& first =
      (*check)->bidirectional((*check)->first_bidirectional());
  if (initial_state_inputs != 0 &&
      initial_state_inputs != first.state_count()) {
    return Invalid(
        where, absl::StrCat("the model feeds ", initial_state_inputs,
                            " initial-state inputs to '", first.name,
                            "', which has ", first.state_count(), " states"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::Model> ConvertKerasModel(const KerasModelConfig& config,
                                            KerasFlavour flavour,
                                            WeightMap& weights,
                                            const std::string& model_name,
                                            absl::string_view where) {
  absl::StatusOr<v1::Model> model =
      ConvertLayers(config.chain.layers, flavour, weights);
  if (!model.ok()) return model.status();
  model->set_name(model_name);
  if (std::optional<std::string> unused = FirstUnusedWeight(weights)) {
    return Invalid(where,
                   absl::StrCat("weight '", *unused,
                                "' in the manifest belongs to no imported "
                                "layer"));
  }
  if (absl::Status s =
          Validate(*model, config.chain.initial_state_inputs, where);
      !s.ok()) {
    return s;
  }
  return model;
}

}  // namespace biserve::importers
