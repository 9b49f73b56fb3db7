#include "importers/keras_config_upgrade.h"

#include <string>

#include "absl/strings/string_view.h"
#include "importers/json_fields.h"

namespace biserve::importers {
namespace {

using google::protobuf::ListValue;
using google::protobuf::Struct;
using google::protobuf::Value;

// Moves `from` to `to` unless `to` is already there.
void Rename(Struct& config, const char* from, const char* to) {
  auto& fields = *config.mutable_fields();
  auto it = fields.find(from);
  if (it == fields.end()) return;
  // Copied first: inserting may rehash the map under `it`.
  const Value value = it->second;
  if (fields.find(to) == fields.end()) fields[to] = value;
  fields.erase(from);
}

void SetString(Struct& config, const char* key, const char* value) {
  (*config.mutable_fields())[key].set_string_value(value);
}

void SetBool(Struct& config, const char* key, bool value) {
  (*config.mutable_fields())[key].set_bool_value(value);
}

void UpgradeLayer(Value& entry);

// A recurrent layer's config. CuDNN layers had fixed activations and
// always a bias; a CuDNNGRU loads into a GRU with reset_after = true.
void UpgradeRecurrent(Struct& entry, Struct& config) {
  Rename(config, "output_dim", "units");
  Rename(config, "inner_activation", "recurrent_activation");
  const std::string class_name = GetString(entry, "class_name").value_or("");
  if (class_name == "CuDNNLSTM" || class_name == "CuDNNGRU") {
    const bool gru = class_name == "CuDNNGRU";
    SetString(entry, "class_name", gru ? "GRU" : "LSTM");
    SetString(config, "activation", "tanh");
    SetString(config, "recurrent_activation", "sigmoid");
    SetBool(config, "use_bias", true);
    if (gru) SetBool(config, "reset_after", true);
    return;
  }
  if (class_name == "GRU" && Get(config, "reset_after") == nullptr) {
    SetBool(config, "reset_after", false);
  }
}

void UpgradeLayer(Value& entry) {
  if (!entry.has_struct_value()) return;
  Struct& layer = *entry.mutable_struct_value();
  const std::string class_name = GetString(layer, "class_name").value_or("");
  auto config_it = layer.mutable_fields()->find("config");
  if (config_it == layer.mutable_fields()->end() ||
      !config_it->second.has_struct_value()) {
    return;
  }
  Struct& config = *config_it->second.mutable_struct_value();
  if (class_name == "LSTM" || class_name == "GRU" ||
      class_name == "SimpleRNN" || class_name == "CuDNNLSTM" ||
      class_name == "CuDNNGRU") {
    UpgradeRecurrent(layer, config);
  } else if (class_name == "Dense") {
    Rename(config, "output_dim", "units");
    Rename(config, "bias", "use_bias");
  }
  for (const char* wrapped : {"layer", "backward_layer"}) {
    auto it = config.mutable_fields()->find(wrapped);
    if (it != config.mutable_fields()->end()) UpgradeLayer(it->second);
  }
}

void UpgradeLayers(ListValue& layers) {
  for (Value& layer : *layers.mutable_values()) UpgradeLayer(layer);
}

// The input shape a built Sequential records outside its layers: Keras 3's
// build_config (the model's or its first layer's), tf.keras' config
// build_input_shape.
const ListValue* RecordedInputShape(const Struct& model_config,
                                    const Struct& config,
                                    const Struct& first_entry) {
  for (const Struct* holder : {&model_config, &first_entry}) {
    const Struct* build = GetObject(*holder, "build_config");
    const ListValue* shape =
        build != nullptr ? GetList(*build, "input_shape") : nullptr;
    if (shape != nullptr) return shape;
  }
  return GetList(config, "build_input_shape");
}

// A Sequential built by fit() or build(), not from an input shape, lists
// no InputLayer and no batch_input_shape: the input size is then only in
// the shape it recorded, copied here to the first layer, where the
// converter looks.
void RecordInputShape(Struct& model_config) {
  Value& config = (*model_config.mutable_fields())["config"];
  if (GetString(model_config, "class_name").value_or("") != "Sequential" ||
      !config.has_struct_value()) {
    return;
  }
  auto layers = config.mutable_struct_value()->mutable_fields()->find("layers");
  if (layers == config.mutable_struct_value()->mutable_fields()->end() ||
      !layers->second.has_list_value() ||
      layers->second.list_value().values_size() == 0 ||
      !layers->second.list_value().values(0).has_struct_value()) {
    return;
  }
  Struct& first = *layers->second.mutable_list_value()
                       ->mutable_values(0)
                       ->mutable_struct_value();
  auto first_config = first.mutable_fields()->find("config");
  if (GetString(first, "class_name").value_or("") == "InputLayer" ||
      first_config == first.mutable_fields()->end() ||
      !first_config->second.has_struct_value()) {
    return;
  }
  Struct& c = *first_config->second.mutable_struct_value();
  if (Get(c, "batch_input_shape") != nullptr ||
      Get(c, "batch_shape") != nullptr) {
    return;
  }
  const ListValue* shape =
      RecordedInputShape(model_config, config.struct_value(), first);
  if (shape != nullptr) {
    const ListValue copy = *shape;  // may live in `first` itself
    *(*c.mutable_fields())["batch_input_shape"].mutable_list_value() = copy;
  }
}

}  // namespace

void UpgradeKerasModelConfig(Struct& model_config) {
  if (Get(model_config, "config") == nullptr) return;
  RecordInputShape(model_config);
  auto it = model_config.mutable_fields()->find("config");
  if (it == model_config.mutable_fields()->end()) return;
  Value& config = it->second;
  // Keras 1 and Keras <= 2.2.2 write a Sequential's layers as a bare list.
  if (config.has_list_value()) {
    UpgradeLayers(*config.mutable_list_value());
    return;
  }
  if (!config.has_struct_value()) return;
  auto layers = config.mutable_struct_value()->mutable_fields()->find("layers");
  if (layers != config.mutable_struct_value()->mutable_fields()->end() &&
      layers->second.has_list_value()) {
    UpgradeLayers(*layers->second.mutable_list_value());
  }
}

}  // namespace biserve::importers
