#include "importers/keras_layer_converter.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "importers/import_error.h"
#include "importers/json_fields.h"
#include "importers/keras_layer_options.h"

namespace biserve::importers {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

absl::StatusOr<v1::CellType> RnnCell(const KerasLayer& rnn,
                                     absl::string_view where) {
  if (rnn.class_name == "LSTM") return v1::LSTM;
  if (rnn.class_name == "GRU") return v1::GRU;
  if (rnn.class_name == "SimpleRNN") return v1::SIMPLE_RNN;
  return Invalid(where,
                 absl::StrCat("a Bidirectional layer over ", rnn.class_name,
                              " is not supported; expected LSTM, GRU "
                              "or SimpleRNN"));
}

// Options of a recurrent layer that biserve does not do.
absl::Status CheckRnnOptions(const Struct& c, absl::string_view where) {
  if (absl::Status s = CheckCommonOptions(c, where); !s.ok()) return s;
  if (GetBool(c, "time_major").value_or(false)) {
    return Invalid(where,
                   "time_major = true is not supported; save the model with "
                   "time_major = false (batch-major inputs)");
  }
  if (GetBool(c, "stateful").value_or(false)) {
    return Invalid(where,
                   "stateful = true is not supported: biserve evaluates every "
                   "request independently, so no state carries over; save "
                   "the model with stateful = false");
  }
  return absl::OkStatus();
}

// REQUIRES: out->cell() is set.
absl::Status SetRnnActivations(const Struct& c, KerasFlavour flavour,
                               absl::string_view where, v1::RnnLayer* out) {
  absl::StatusOr<std::string> activation =
      ActivationOption(c, "activation", "tanh", flavour, where);
  if (!activation.ok()) return activation.status();
  out->set_activation(*activation);
  if (out->cell() == v1::SIMPLE_RNN) return absl::OkStatus();
  // TF.js defaults recurrent_activation to hard_sigmoid, Keras to sigmoid;
  // both write it out, so the default only serves hand-written files.
  absl::StatusOr<std::string> recurrent = ActivationOption(
      c, "recurrent_activation",
      flavour == KerasFlavour::kTfjs ? "hard_sigmoid" : "sigmoid", flavour,
      where);
  if (!recurrent.ok()) return recurrent.status();
  out->set_recurrent_activation(*recurrent);
  return absl::OkStatus();
}

// Takes the weights of the RNN whose names start with `prefix`: kernel,
// recurrent kernel, and bias when `use_bias`.
absl::Status TakeRnnWeights(WeightMap& weights, absl::string_view prefix,
                            bool use_bias, absl::string_view where,
                            v1::RnnWeights* w) {
  if (absl::Status s =
          TakeWeight(weights, prefix, "kernel", where, w->mutable_kernel());
      !s.ok()) {
    return s;
  }
  if (absl::Status s = TakeWeight(weights, prefix, "recurrent_kernel", where,
                                  w->mutable_recurrent_kernel());
      !s.ok()) {
    return s;
  }
  return use_bias
             ? TakeWeight(weights, prefix, "bias", where, w->mutable_bias())
             : absl::OkStatus();
}

// One direction of a Bidirectional layer; `weight_prefix` is
// "<bidirectional>/forward" or "<bidirectional>/backward".
absl::StatusOr<v1::RnnLayer> ConvertRnn(const KerasLayer& rnn,
                                        WeightMap& weights,
                                        absl::string_view weight_prefix,
                                        KerasFlavour flavour,
                                        absl::string_view where) {
  v1::RnnLayer out;
  const Struct& c = *rnn.config;
  out.set_name(rnn.name);
  absl::StatusOr<v1::CellType> cell = RnnCell(rnn, where);
  if (!cell.ok()) return cell.status();
  out.set_cell(*cell);
  if (absl::Status s = CheckRnnOptions(c, where); !s.ok()) return s;
  absl::StatusOr<int32_t> units = UnitsOption(c, where);
  if (!units.ok()) return units.status();
  out.set_units(*units);
  if (absl::Status s = SetRnnActivations(c, flavour, where, &out); !s.ok()) {
    return s;
  }
  const bool use_bias = GetBool(c, "use_bias").value_or(true);
  out.set_use_bias(use_bias);
  if (out.cell() == v1::GRU) {
    // Keras 2 and 3 default to reset_after = true; TF.js has only false.
    out.set_reset_after(
        GetBool(c, "reset_after").value_or(flavour != KerasFlavour::kTfjs));
  }
  out.set_go_backwards(GetBool(c, "go_backwards").value_or(false));
  out.set_return_sequences(GetBool(c, "return_sequences").value_or(false));
  out.set_return_state(GetBool(c, "return_state").value_or(false));

  if (absl::Status s = TakeRnnWeights(weights, weight_prefix, use_bias, where,
                                      out.mutable_weights());
      !s.ok()) {
    return s;
  }
  return out;
}

// Keras' default backward layer: the wrapped layer's configuration with
// go_backwards flipped, and weights of its own; else the backward_layer
// given.
absl::Status ConvertBackward(const KerasLayer& layer, const KerasLayer& forward,
                             WeightMap& weights, KerasFlavour flavour,
                             v1::BidirectionalLayer* bidi) {
  const std::string where = layer.Label();
  const std::string prefix = absl::StrCat(layer.name, "/backward");
  const Value* back = Get(*layer.config, "backward_layer");
  if (back == nullptr) {
    absl::StatusOr<v1::RnnLayer> bw =
        ConvertRnn(forward, weights, prefix, flavour,
                   absl::StrCat(where, " backward copy of ", forward.Label()));
    if (!bw.ok()) return bw.status();
    *bidi->mutable_backward_weights() = bw->weights();
    return absl::OkStatus();
  }
  absl::StatusOr<KerasLayer> backward = ParseKerasLayer(*back, where);
  if (!backward.ok()) return backward.status();
  absl::StatusOr<v1::RnnLayer> bw =
      ConvertRnn(*backward, weights, prefix, flavour,
                 absl::StrCat(where, " backward ", backward->Label()));
  if (!bw.ok()) return bw.status();
  *bidi->mutable_backward_layer() = *std::move(bw);
  return absl::OkStatus();
}

// Keras' merge_mode=None is JSON null.
absl::StatusOr<std::string> MergeMode(const Struct& c,
                                      absl::string_view where) {
  const Value* merge = Get(c, "merge_mode");
  if (merge == nullptr) return std::string("none");
  if (merge->kind_case() != Value::kStringValue) {
    return Invalid(where, "merge_mode must be a string or null");
  }
  return merge->string_value();
}

absl::StatusOr<v1::Layer> ConvertBidirectional(const KerasLayer& layer,
                                               WeightMap& weights,
                                               KerasFlavour flavour) {
  const std::string where = layer.Label();
  v1::Layer out;
  v1::BidirectionalLayer* bidi = out.mutable_bidirectional();
  bidi->set_name(layer.name);
  const Value* inner = Get(*layer.config, "layer");
  if (inner == nullptr) return Invalid(where, "no wrapped \"layer\"");
  absl::StatusOr<KerasLayer> forward = ParseKerasLayer(*inner, where);
  if (!forward.ok()) return forward.status();
  absl::StatusOr<v1::RnnLayer> fw =
      ConvertRnn(*forward, weights, absl::StrCat(layer.name, "/forward"),
                 flavour, absl::StrCat(where, " forward ", forward->Label()));
  if (!fw.ok()) return fw.status();
  *bidi->mutable_layer() = *std::move(fw);
  if (absl::Status s = ConvertBackward(layer, *forward, weights, flavour, bidi);
      !s.ok()) {
    return s;
  }
  // Keras' Bidirectional zeroes the outputs at masked steps; TF.js' outputs
  // each direction's state there.
  bidi->set_masked_step_output(flavour == KerasFlavour::kTfjs
                                   ? v1::MASKED_STEP_OUTPUT_STATE
                                   : v1::MASKED_STEP_OUTPUT_ZEROS);
  absl::StatusOr<std::string> merge = MergeMode(*layer.config, where);
  if (!merge.ok()) return merge.status();
  bidi->set_merge_mode(*merge);
  return out;
}

// `dense`'s configuration under `weight_name`: its own name, or that of the
// TimeDistributed layer around it, which owns the weights.
absl::StatusOr<v1::Layer> ConvertDense(const KerasLayer& dense,
                                       absl::string_view weight_name,
                                       WeightMap& weights, KerasFlavour flavour,
                                       absl::string_view where) {
  const Struct& c = *dense.config;
  if (absl::Status s = CheckCommonOptions(c, where); !s.ok()) return s;
  v1::Layer out;
  v1::DenseLayer* d = out.mutable_dense();
  d->set_name(std::string(weight_name));
  absl::StatusOr<int32_t> units = UnitsOption(c, where);
  if (!units.ok()) return units.status();
  d->set_units(*units);
  absl::StatusOr<std::string> activation =
      ActivationOption(c, "activation", "linear", flavour, where);
  if (!activation.ok()) return activation.status();
  d->set_activation(*activation);
  const bool use_bias = GetBool(c, "use_bias").value_or(true);
  d->set_use_bias(use_bias);
  if (absl::Status s = TakeWeight(weights, weight_name, "kernel", where,
                                  d->mutable_kernel());
      !s.ok()) {
    return s;
  }
  if (use_bias) {
    if (absl::Status s =
            TakeWeight(weights, weight_name, "bias", where, d->mutable_bias());
        !s.ok()) {
      return s;
    }
  }
  return out;
}

absl::StatusOr<v1::Layer> ConvertTimeDistributed(const KerasLayer& layer,
                                                 WeightMap& weights,
                                                 KerasFlavour flavour) {
  const std::string where = layer.Label();
  const Value* inner = Get(*layer.config, "layer");
  if (inner == nullptr) return Invalid(where, "no wrapped \"layer\"");
  absl::StatusOr<KerasLayer> wrapped = ParseKerasLayer(*inner, where);
  if (!wrapped.ok()) return wrapped.status();
  if (wrapped->class_name != "Dense") {
    return Invalid(where, absl::StrCat("TimeDistributed(", wrapped->class_name,
                                       ") is not supported; only "
                                       "TimeDistributed(Dense)"));
  }
  return ConvertDense(*wrapped, layer.name, weights, flavour,
                      absl::StrCat(where, " over ", wrapped->Label()));
}

v1::Layer ConvertMasking(const KerasLayer& layer) {
  v1::Layer out;
  v1::MaskingLayer* m = out.mutable_masking();
  m->set_name(layer.name);
  m->set_mask_value(
      static_cast<float>(GetNumber(*layer.config, "mask_value").value_or(0.0)));
  return out;
}

absl::StatusOr<v1::Layer> ConvertEmbedding(const KerasLayer& layer,
                                           WeightMap& weights) {
  const std::string where = layer.Label();
  const Struct& c = *layer.config;
  if (absl::Status s = CheckCommonOptions(c, where); !s.ok()) return s;
  v1::Layer out;
  v1::EmbeddingLayer* e = out.mutable_embedding();
  e->set_name(layer.name);
  e->set_input_dim(ToInt32(GetNumber(c, "input_dim").value_or(0)));
  e->set_output_dim(ToInt32(GetNumber(c, "output_dim").value_or(0)));
  e->set_mask_zero(GetBool(c, "mask_zero").value_or(false));
  if (absl::Status s = TakeWeight(weights, layer.name, "embeddings", where,
                                  e->mutable_embeddings());
      !s.ok()) {
    return s;
  }
  return out;
}

}  // namespace

absl::StatusOr<v1::Layer> ConvertKerasLayer(const KerasLayer& layer,
                                            WeightMap& weights,
                                            KerasFlavour flavour) {
  const std::string& kind = layer.class_name;
  if (kind == "Masking") return ConvertMasking(layer);
  if (kind == "Embedding") return ConvertEmbedding(layer, weights);
  if (kind == "Bidirectional") {
    return ConvertBidirectional(layer, weights, flavour);
  }
  if (kind == "Dense") {
    return ConvertDense(layer, layer.name, weights, flavour, layer.Label());
  }
  if (kind == "TimeDistributed") {
    return ConvertTimeDistributed(layer, weights, flavour);
  }
  if (kind == "LSTM" || kind == "GRU" || kind == "SimpleRNN") {
    return Invalid(layer.Label(),
                   "a recurrent layer outside a Bidirectional wrapper is "
                   "not supported; biserve serves Bidirectional layers");
  }
  return Invalid(
      layer.Label(),
      "layer type not supported; biserve imports InputLayer, Masking, "
      "Embedding, Bidirectional (LSTM, GRU, SimpleRNN), Dense, "
      "TimeDistributed(Dense), Activation, BatchNormalization, "
      "LayerNormalization, GlobalMaxPooling1D, GlobalAveragePooling1D, "
      "Flatten (of a vector) and, as identities, Dropout, SpatialDropout1D, "
      "GaussianNoise, GaussianDropout and AlphaDropout");
}

}  // namespace biserve::importers
