#include "importers/keras_model_config.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "importers/import_error.h"
#include "importers/json_fields.h"

namespace biserve::importers {
namespace {

using google::protobuf::ListValue;
using google::protobuf::Value;

// Keras 2 and TF.js: {"name": ..., "layers": [...]}; old Keras: [...].
absl::StatusOr<KerasModelConfig> SequentialConfig(const Value& config,
                                                  absl::string_view where) {
  const ListValue* list = config.has_list_value() ? &config.list_value()
                          : config.has_struct_value()
                              ? GetList(config.struct_value(), "layers")
                              : nullptr;
  if (list == nullptr) {
    return Invalid(where, "the Sequential config has no layers");
  }
  KerasModelConfig model;
  if (config.has_struct_value()) {
    model.name = GetString(config.struct_value(), "name").value_or("");
  }
  absl::StatusOr<std::vector<KerasLayer>> layers = ParseKerasLayers(*list);
  if (!layers.ok()) return layers.status();
  model.chain.layers = *std::move(layers);
  return model;
}

absl::StatusOr<KerasModelConfig> FunctionalConfig(const Value& config,
                                                  absl::string_view where) {
  if (!config.has_struct_value()) {
    return Invalid(where, "the model config is not an object");
  }
  KerasModelConfig model;
  model.name = GetString(config.struct_value(), "name").value_or("");
  absl::StatusOr<KerasChain> chain = FunctionalChain(config.struct_value());
  if (!chain.ok()) return chain.status();
  model.chain = *std::move(chain);
  return model;
}

}  // namespace

absl::StatusOr<KerasModelConfig> ParseKerasModelConfig(
    const google::protobuf::Struct& model_config, absl::string_view where) {
  const std::string class_name =
      GetString(model_config, "class_name").value_or("");
  const Value* config = Get(model_config, "config");
  if (config == nullptr) {
    return Invalid(where, "the model config has no \"config\"");
  }
  if (class_name == "Sequential") return SequentialConfig(*config, where);
  if (class_name == "Functional" || class_name == "Model") {
    return FunctionalConfig(*config, where);
  }
  return Invalid(where, absl::StrCat("model class '", class_name,
                                     "' is not supported; expected "
                                     "Sequential or a functional model"));
}

}  // namespace biserve::importers
