#include "importers/keras_layer.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "importers/import_error.h"
#include "importers/json_fields.h"

namespace biserve::importers {

using google::protobuf::ListValue;
using google::protobuf::Struct;
using google::protobuf::Value;

KerasFlavour KerasFlavourFromVersion(absl::string_view keras_version) {
  if (absl::StartsWith(keras_version, "tfjs")) return KerasFlavour::kTfjs;
  if (absl::StartsWith(keras_version, "3.")) return KerasFlavour::kKeras3;
  return KerasFlavour::kKeras2;
}

std::string KerasLayer::Label() const {
  return absl::StrCat("layer '", name, "' (", class_name, ")");
}

absl::StatusOr<KerasLayer> ParseKerasLayer(const Value& value,
                                           absl::string_view where) {
  if (!value.has_struct_value()) {
    return Invalid(where, "expected a layer object");
  }
  KerasLayer layer;
  layer.entry = &value.struct_value();
  layer.class_name = GetString(*layer.entry, "class_name").value_or("");
  layer.config = GetObject(*layer.entry, "config");
  if (layer.class_name.empty() || layer.config == nullptr) {
    return Invalid(where, "expected \"class_name\" and \"config\"");
  }
  layer.name = GetString(*layer.entry, "name")
                   .value_or(GetString(*layer.config, "name").value_or(""));
  return layer;
}

absl::StatusOr<std::vector<KerasLayer>> ParseKerasLayers(
    const ListValue& list) {
  std::vector<KerasLayer> layers;
  for (int i = 0; i < list.values_size(); ++i) {
    absl::StatusOr<KerasLayer> layer =
        ParseKerasLayer(list.values(i), absl::StrCat("layers[", i, "]"));
    if (!layer.ok()) return layer.status();
    layers.push_back(*std::move(layer));
  }
  return layers;
}

bool IsInputLayer(const KerasLayer& layer) {
  return layer.class_name == "InputLayer";
}

bool IsInferenceNoOp(const KerasLayer& layer) {
  return layer.class_name == "Dropout" ||
         layer.class_name == "SpatialDropout1D";
}

std::optional<int> InputSize(const Struct& config) {
  for (absl::string_view key : {"batch_input_shape", "batch_shape"}) {
    const ListValue* shape = GetList(config, key);
    if (shape != nullptr && shape->values_size() > 0 &&
        shape->values(shape->values_size() - 1).kind_case() ==
            Value::kNumberValue) {
      return ToInt32(shape->values(shape->values_size() - 1).number_value());
    }
  }
  return std::nullopt;
}

std::optional<int64_t> DeclaredTimeSteps(const Struct& config,
                                         bool token_input) {
  for (absl::string_view key : {"batch_input_shape", "batch_shape"}) {
    const ListValue* shape = GetList(config, key);
    if (shape == nullptr) continue;
    if (shape->values_size() != (token_input ? 2 : 3)) return std::nullopt;
    const Value& steps = shape->values(1);
    if (steps.kind_case() != Value::kNumberValue ||
        !(steps.number_value() >= 1 && steps.number_value() <= 1e15)) {
      return std::nullopt;
    }
    return static_cast<int64_t>(steps.number_value());
  }
  return std::nullopt;
}

}  // namespace biserve::importers
