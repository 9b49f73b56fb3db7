#include "importers/keras_extra_layers.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "importers/import_error.h"
#include "importers/json_fields.h"
#include "importers/keras_layer_options.h"

namespace biserve::importers {
namespace {

using google::protobuf::ListValue;
using google::protobuf::Struct;
using google::protobuf::Value;

bool IsPooling(const std::string& kind, bool* max) {
  *max = kind == "GlobalMaxPooling1D" || kind == "GlobalMaxPool1D";
  return *max || kind == "GlobalAveragePooling1D" || kind == "GlobalAvgPool1D";
}

// Keras' channels_last (the only layout a recurrent layer's output has) and
// keepdims = false: the pooled value is a vector, as biserve's outputs are.
absl::StatusOr<v1::Layer> ConvertPooling(const KerasLayer& layer, bool max,
                                         bool input_is_sequence) {
  const std::string where = layer.Label();
  const Struct& c = *layer.config;
  if (absl::Status s = CheckCommonOptions(c, where); !s.ok()) return s;
  if (!input_is_sequence) {
    return Invalid(where,
                   "global pooling needs a sequence, but the layers before "
                   "it output one vector per sequence");
  }
  for (const char* key : {"data_format", "dataFormat"}) {
    std::optional<std::string> format = GetString(c, key);
    if (format.has_value() && *format != "channels_last") {
      return Invalid(where, absl::StrCat("data_format '", *format,
                                         "' is not supported; only "
                                         "channels_last (features last)"));
    }
  }
  if (GetBool(c, "keepdims").value_or(false)) {
    return Invalid(where,
                   "keepdims = true is not supported: it keeps a time axis "
                   "of length 1; save the model with keepdims = false");
  }
  v1::Layer out;
  v1::GlobalPoolingLayer* p = out.mutable_global_pooling();
  p->set_name(layer.name);
  p->set_pooling(max ? v1::MAX : v1::AVERAGE);
  return out;
}

// The normalization axis must be the features: -1, or the last axis
// counted from the front (2 on a sequence, 1 on a vector, as tf.keras 2
// writes it after building), alone or as a one-element list.
absl::Status CheckFeatureAxis(const Struct& c, bool input_is_sequence,
                              absl::string_view where) {
  const Value* axis = Get(c, "axis");
  if (axis == nullptr) return absl::OkStatus();  // Keras' default, -1
  const Value* single = axis;
  if (axis->kind_case() == Value::kListValue) {
    const ListValue& list = axis->list_value();
    single = list.values_size() == 1 ? &list.values(0) : nullptr;
  }
  const int last = input_is_sequence ? 2 : 1;
  if (single != nullptr && single->kind_case() == Value::kNumberValue &&
      (single->number_value() == -1 || single->number_value() == last)) {
    return absl::OkStatus();
  }
  return Invalid(where,
                 absl::StrCat("axis must be the feature axis (-1 or ", last,
                              " here); normalizing over other axes is not "
                              "supported"));
}

// Fills epsilon, center, scale, gamma and beta, shared by both layers.
template <typename Proto>
absl::Status SetNormalization(const KerasLayer& layer, WeightMap& weights,
                              bool input_is_sequence, Proto* n) {
  const std::string where = layer.Label();
  const Struct& c = *layer.config;
  if (absl::Status s = CheckCommonOptions(c, where); !s.ok()) return s;
  if (absl::Status s = CheckFeatureAxis(c, input_is_sequence, where); !s.ok()) {
    return s;
  }
  n->set_name(layer.name);
  n->set_epsilon(static_cast<float>(GetNumber(c, "epsilon").value_or(1e-3)));
  const bool center = GetBool(c, "center").value_or(true);
  const bool scale = GetBool(c, "scale").value_or(true);
  n->set_center(center);
  n->set_scale(scale);
  if (scale) {
    if (absl::Status s =
            TakeWeight(weights, layer.name, "gamma", where, n->mutable_gamma());
        !s.ok()) {
      return s;
    }
  }
  if (center) {
    return TakeWeight(weights, layer.name, "beta", where, n->mutable_beta());
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::Layer> ConvertBatchNormalization(const KerasLayer& layer,
                                                    WeightMap& weights,
                                                    bool input_is_sequence) {
  const std::string where = layer.Label();
  // Batch renormalization keeps extra statistics (renorm_mean, ...) that
  // only training reads; refused rather than guessed about.
  if (GetBool(*layer.config, "renorm").value_or(false)) {
    return Invalid(where, "renorm = true is not supported");
  }
  v1::Layer out;
  v1::BatchNormalizationLayer* bn = out.mutable_batch_normalization();
  if (absl::Status s = SetNormalization(layer, weights, input_is_sequence, bn);
      !s.ok()) {
    return s;
  }
  for (auto [leaf, tensor] :
       {std::pair{"moving_mean", bn->mutable_moving_mean()},
        std::pair{"moving_variance", bn->mutable_moving_variance()}}) {
    if (absl::Status s = TakeWeight(weights, layer.name, leaf, where, tensor);
        !s.ok()) {
      return s;
    }
  }
  return out;
}

absl::StatusOr<v1::Layer> ConvertLayerNormalization(const KerasLayer& layer,
                                                    WeightMap& weights,
                                                    bool input_is_sequence) {
  // Keras 3's rms_scaling divides by the root mean square without
  // centering; its formula changed between Keras 3 releases.
  if (GetBool(*layer.config, "rms_scaling").value_or(false)) {
    return Invalid(layer.Label(),
                   "rms_scaling = true is not supported; only Keras' "
                   "standard layer normalization");
  }
  v1::Layer out;
  if (absl::Status s = SetNormalization(layer, weights, input_is_sequence,
                                        out.mutable_layer_normalization());
      !s.ok()) {
    return s;
  }
  return out;
}

absl::StatusOr<v1::Layer> ConvertActivation(const KerasLayer& layer,
                                            KerasFlavour flavour) {
  const std::string where = layer.Label();
  if (Get(*layer.config, "activation") == nullptr) {
    return Invalid(where, "no \"activation\" option");
  }
  absl::StatusOr<std::string> activation =
      ActivationOption(*layer.config, "activation", "linear", flavour, where);
  if (!activation.ok()) return activation.status();
  v1::Layer out;
  out.mutable_activation()->set_name(layer.name);
  out.mutable_activation()->set_activation(*activation);
  return out;
}

}  // namespace

bool IsInferenceIdentity(const KerasLayer& layer) {
  const std::string& kind = layer.class_name;
  return kind == "Dropout" || kind == "SpatialDropout1D" ||
         kind == "GaussianNoise" || kind == "GaussianDropout" ||
         kind == "AlphaDropout";
}

bool IsExtraLayer(const KerasLayer& layer) {
  const std::string& kind = layer.class_name;
  bool max;
  return kind == "Activation" || kind == "BatchNormalization" ||
         kind == "LayerNormalization" || kind == "Flatten" ||
         IsPooling(kind, &max);
}

bool OutputsSequence(const v1::Model& model) {
  for (int i = model.layers_size() - 1; i >= 0; --i) {
    const v1::Layer& layer = model.layers(i);
    if (layer.has_global_pooling()) return false;
    if (layer.has_bidirectional()) {
      return layer.bidirectional().layer().return_sequences();
    }
  }
  return true;
}

absl::StatusOr<std::optional<v1::Layer>> ConvertExtraLayer(
    const KerasLayer& layer, WeightMap& weights, KerasFlavour flavour,
    bool input_is_sequence) {
  const std::string& kind = layer.class_name;
  bool max = false;
  if (IsPooling(kind, &max)) {
    return ConvertPooling(layer, max, input_is_sequence);
  }
  if (kind == "BatchNormalization") {
    return ConvertBatchNormalization(layer, weights, input_is_sequence);
  }
  if (kind == "LayerNormalization") {
    return ConvertLayerNormalization(layer, weights, input_is_sequence);
  }
  if (kind == "Activation") return ConvertActivation(layer, flavour);
  if (kind == "Flatten") {
    if (!input_is_sequence) return std::nullopt;
    return Invalid(layer.Label(),
                   "Flatten of a sequence ([T, D] to [T * D]) is not "
                   "supported: biserve's sequences have any length; pool "
                   "them (GlobalMaxPooling1D, GlobalAveragePooling1D) or end "
                   "the last Bidirectional with return_sequences = false");
  }
  return Invalid(layer.Label(), "not a layer ConvertExtraLayer converts");
}

}  // namespace biserve::importers
