#include "importers/tfjs_importer.h"

#include <algorithm>
#include <bit>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/kernels/activation.h"
#include "core/model/model.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "proto/model_codec.h"
#include "proto/read_file.h"

namespace biserve {
namespace {

using google::protobuf::ListValue;
using google::protobuf::Struct;
using google::protobuf::Value;

static_assert(std::endian::native == std::endian::little,
              "weight shards are little-endian float32");

absl::Status Invalid(absl::string_view where, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
}

// ---------------------------------------------------------------------------
// JSON access over google.protobuf.Struct. A JSON null reads as absent.

const Value* Get(const Struct& object, absl::string_view key) {
  auto it = object.fields().find(std::string(key));
  if (it == object.fields().end() ||
      it->second.kind_case() == Value::kNullValue) {
    return nullptr;
  }
  return &it->second;
}

const Struct* GetObject(const Struct& object, absl::string_view key) {
  const Value* v = Get(object, key);
  return v != nullptr && v->has_struct_value() ? &v->struct_value() : nullptr;
}

const ListValue* GetList(const Struct& object, absl::string_view key) {
  const Value* v = Get(object, key);
  return v != nullptr && v->has_list_value() ? &v->list_value() : nullptr;
}

std::optional<std::string> GetString(const Struct& object,
                                     absl::string_view key) {
  const Value* v = Get(object, key);
  if (v == nullptr || v->kind_case() != Value::kStringValue) {
    return std::nullopt;
  }
  return v->string_value();
}

std::optional<double> GetNumber(const Struct& object, absl::string_view key) {
  const Value* v = Get(object, key);
  if (v == nullptr || v->kind_case() != Value::kNumberValue) {
    return std::nullopt;
  }
  return v->number_value();
}

// A JSON number as an int32, saturated (NaN: 0). Keras writes whole numbers
// where this is used; any other number must get an error from the checks
// that follow, not undefined behaviour from a plain cast (found by
// fuzz_tfjs_import).
int32_t ToInt32(double v) {
  if (std::isnan(v)) return 0;
  return static_cast<int32_t>(std::clamp(v, -2147483648.0, 2147483647.0));
}

std::optional<bool> GetBool(const Struct& object, absl::string_view key) {
  const Value* v = Get(object, key);
  if (v == nullptr || v->kind_case() != Value::kBoolValue) return std::nullopt;
  return v->bool_value();
}

// ---------------------------------------------------------------------------
// Weights: the manifest's groups, each a list of shard files read end to end
// and cut into the weights it lists, in order.

struct Weight {
  std::vector<int64_t> shape;
  std::vector<float> values;
  bool used = false;
};

// By name, without Keras' ":0" suffix.
using WeightMap = std::map<std::string, Weight>;

absl::StatusOr<WeightMap> ReadWeights(const Struct& root,
                                      const std::filesystem::path& folder) {
  WeightMap weights;
  const ListValue* groups = GetList(root, "weightsManifest");
  if (groups == nullptr) {
    return Invalid("model.json", "no weightsManifest list");
  }
  for (int g = 0; g < groups->values_size(); ++g) {
    const std::string where = absl::StrCat("weightsManifest[", g, "]");
    if (!groups->values(g).has_struct_value()) {
      return Invalid(where, "expected an object with paths and weights");
    }
    const Struct& group = groups->values(g).struct_value();
    const ListValue* paths = GetList(group, "paths");
    const ListValue* specs = GetList(group, "weights");
    if (paths == nullptr || specs == nullptr) {
      return Invalid(where, "expected \"paths\" and \"weights\" lists");
    }
    std::string bytes;
    std::vector<std::string> files;
    for (const Value& path : paths->values()) {
      if (path.kind_case() != Value::kStringValue) {
        return Invalid(where, "paths must be strings");
      }
      // Shards sit in the model's folder, where the converter and
      // model.save write them. An absolute path or a ".." would read any
      // file of the machine into the weights (or /dev/zero without end).
      const std::filesystem::path relative(path.string_value());
      if (relative.empty() || relative.is_absolute() ||
          std::any_of(
              relative.begin(), relative.end(),
              [](const std::filesystem::path& part) { return part == ".."; })) {
        return Invalid(
            where,
            absl::StrCat("paths must name files in the model's folder; got '",
                         path.string_value().substr(0, 100), "'"));
      }
      const std::string file = (folder / relative).string();
      absl::StatusOr<std::string> shard = ReadFile(file, "the weight shard");
      if (!shard.ok()) return shard.status();
      bytes += *shard;
      files.push_back(path.string_value());
    }
    size_t offset = 0;
    for (int w = 0; w < specs->values_size(); ++w) {
      const std::string spec_where = absl::StrCat(where, ".weights[", w, "]");
      if (!specs->values(w).has_struct_value()) {
        return Invalid(spec_where, "expected an object");
      }
      const Struct& spec = specs->values(w).struct_value();
      std::optional<std::string> name = GetString(spec, "name");
      const ListValue* shape = GetList(spec, "shape");
      if (!name.has_value() || shape == nullptr) {
        return Invalid(spec_where, "expected \"name\" and \"shape\"");
      }
      const std::string dtype = GetString(spec, "dtype").value_or("float32");
      if (Get(spec, "quantization") != nullptr) {
        return Invalid(*name,
                       "quantized weights are not supported; convert without "
                       "quantization");
      }
      if (dtype != "float32") {
        return Invalid(*name, absl::StrCat("dtype ", dtype,
                                           " is not supported; biserve "
                                           "loads float32 weights"));
      }
      Weight weight;
      for (const Value& d : shape->values()) {
        // Whole numbers up to 2^53 (exact in a double): the cast is defined.
        if (d.kind_case() != Value::kNumberValue ||
            !(d.number_value() >= 0 && d.number_value() <= 0x1p53) ||
            d.number_value() != std::floor(d.number_value())) {
          return Invalid(*name, "shape must be a list of sizes");
        }
        weight.shape.push_back(static_cast<int64_t>(d.number_value()));
      }
      // A shape may claim any count: multiply it against the floats the
      // shards still hold, so that nothing overflows (found by
      // fuzz_tfjs_import: the product wrapped and passed the size check).
      const size_t left = (bytes.size() - offset) / sizeof(float);
      size_t count = 1;
      bool fits = true;
      if (std::find(weight.shape.begin(), weight.shape.end(), 0) !=
          weight.shape.end()) {
        count = 0;
      } else {
        for (int64_t dim : weight.shape) {
          if (static_cast<size_t>(dim) > left / count) {
            fits = false;
            break;
          }
          count *= static_cast<size_t>(dim);
        }
      }
      const size_t size = count * sizeof(float);
      if (!fits || offset + size > bytes.size()) {
        return absl::DataLossError(absl::StrCat(
            absl::StrJoin(files, ", "), ": the shards hold ", bytes.size(),
            " bytes, but the manifest needs ",
            fits ? absl::StrCat(offset + size) : std::string("more"),
            " by the end of weight '", *name,
            "' (a truncated or mismatched shard)"));
      }
      weight.values.resize(count);
      if (size > 0) {  // memcpy from or to null is undefined even for 0 bytes
        std::memcpy(weight.values.data(), bytes.data() + offset, size);
      }
      offset += size;
      std::string key = *name;
      if (absl::EndsWith(key, ":0")) key.resize(key.size() - 2);
      if (!weights.emplace(key, std::move(weight)).second) {
        return Invalid(*name, "the manifest lists this weight twice");
      }
    }
    if (offset != bytes.size()) {
      return absl::DataLossError(
          absl::StrCat(absl::StrJoin(files, ", "), ": the shards hold ",
                       bytes.size(), " bytes, but the manifest describes ",
                       offset, " (a mismatched shard)"));
    }
  }
  return weights;
}

// Takes the weight named `prefix`/.../`leaf` (e.g. "bidirectional/forward"
// and "kernel" match "bidirectional/forward_lstm/lstm_cell/kernel") into
// the model's tensor field `out`.
absl::Status TakeWeight(WeightMap& weights, absl::string_view prefix,
                        absl::string_view leaf, absl::string_view where,
                        v1::Tensor* out) {
  Weight* found = nullptr;
  std::string found_name;
  for (auto& [name, weight] : weights) {
    if (!absl::StartsWith(name, prefix)) continue;
    const std::vector<absl::string_view> parts = absl::StrSplit(name, '/');
    if (parts.back() != leaf || parts.size() < 2) continue;
    // The prefix must end at a name boundary ("dense" is not "dense_1"),
    // except for the forward_/backward_ component of a Bidirectional.
    const absl::string_view rest =
        absl::string_view(name).substr(prefix.size());
    if (!absl::EndsWith(prefix, "/forward") &&
        !absl::EndsWith(prefix, "/backward") && !absl::StartsWith(rest, "/")) {
      continue;
    }
    if (found != nullptr) {
      return Invalid(where,
                     absl::StrCat("two weights match '", prefix, "/.../", leaf,
                                  "': '", found_name, "' and '", name, "'"));
    }
    found = &weight;
    found_name = name;
  }
  if (found == nullptr) {
    return Invalid(where, absl::StrCat("weight '", leaf,
                                       "' is missing from the weights "
                                       "manifest (looked for a name like '",
                                       prefix, "/.../", leaf, "')"));
  }
  found->used = true;
  for (int64_t d : found->shape) out->add_shape(d);
  out->mutable_values()->Add(found->values.begin(), found->values.end());
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Keras layer configurations.

enum class Flavour { kKeras2, kKeras3, kTfjs };

// One entry of a model's "layers" list.
struct KerasLayer {
  std::string class_name;
  std::string name;
  const Struct* config = nullptr;
  const Struct* entry = nullptr;  // the whole entry (inbound_nodes etc.)

  std::string Label() const {
    return absl::StrCat("layer '", name, "' (", class_name, ")");
  }
};

absl::StatusOr<KerasLayer> ParseLayer(const Value& value,
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

// Keras 2, Keras 3 and TF.js spell activations differently: "hard_sigmoid",
// "hardSigmoid", or a serialised function object. Keras 3's hard_sigmoid is
// another function than Keras 2's (see docs/model-format.md).
absl::StatusOr<std::string> ActivationOption(const Struct& config,
                                             absl::string_view key,
                                             absl::string_view default_name,
                                             Flavour flavour,
                                             absl::string_view where) {
  const Value* value = Get(config, key);
  std::string name(default_name);
  if (value != nullptr && value->kind_case() == Value::kStringValue) {
    name = value->string_value();
  } else if (value != nullptr && value->has_struct_value()) {
    // Keras 3: {"module": "keras.activations", "class_name": "function",
    //           "config": "tanh", ...}
    std::optional<std::string> inner =
        GetString(value->struct_value(), "config");
    if (!inner.has_value()) {
      return Invalid(where, absl::StrCat(key,
                                         ": a custom activation object "
                                         "is not supported"));
    }
    name = *inner;
  } else if (value != nullptr) {
    return Invalid(where, absl::StrCat(key, ": expected a name"));
  }
  std::string snake;  // hardSigmoid -> hard_sigmoid
  for (char c : name) {
    if (std::isupper(static_cast<unsigned char>(c))) {
      snake += '_';
      snake += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else {
      snake += c;
    }
  }
  if (flavour == Flavour::kKeras3 && snake == "hard_sigmoid") {
    snake = "hard_sigmoid_keras3";
  }
  if (!ParseActivation(snake).ok()) {
    return Invalid(where, absl::StrCat(key, " '", name,
                                       "' is not supported; see "
                                       "docs/model-format.md for the list"));
  }
  return snake;
}

// Options that change numerics and that biserve does not do.
absl::Status CheckCommonOptions(const Struct& config, absl::string_view where) {
  const Value* dtype = Get(config, "dtype");
  std::string dtype_name = "float32";
  if (dtype != nullptr && dtype->kind_case() == Value::kStringValue) {
    dtype_name = dtype->string_value();
  } else if (dtype != nullptr && dtype->has_struct_value()) {
    // A Keras dtype policy: {"class_name": "Policy", "config": {"name": ..}}
    const Struct* policy = GetObject(dtype->struct_value(), "config");
    if (policy != nullptr) {
      dtype_name = GetString(*policy, "name").value_or("float32");
    }
  }
  if (dtype_name != "float32") {
    return Invalid(where, absl::StrCat("dtype ", dtype_name,
                                       " is not supported; biserve computes "
                                       "in float32"));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::RnnLayer> ConvertRnn(const KerasLayer& rnn,
                                        WeightMap& weights,
                                        absl::string_view weight_prefix,
                                        Flavour flavour,
                                        absl::string_view where) {
  v1::RnnLayer out;
  const Struct& c = *rnn.config;
  out.set_name(rnn.name);
  if (rnn.class_name == "LSTM") {
    out.set_cell(v1::LSTM);
  } else if (rnn.class_name == "GRU") {
    out.set_cell(v1::GRU);
  } else if (rnn.class_name == "SimpleRNN") {
    out.set_cell(v1::SIMPLE_RNN);
  } else {
    return Invalid(where,
                   absl::StrCat("a Bidirectional layer over ", rnn.class_name,
                                " is not supported; expected LSTM, GRU "
                                "or SimpleRNN"));
  }
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
  std::optional<double> units = GetNumber(c, "units");
  if (!units.has_value() || *units < 1) {
    return Invalid(where, "units must be a positive number");
  }
  out.set_units(ToInt32(*units));
  absl::StatusOr<std::string> activation =
      ActivationOption(c, "activation", "tanh", flavour, where);
  if (!activation.ok()) return activation.status();
  out.set_activation(*activation);
  if (out.cell() != v1::SIMPLE_RNN) {
    // TF.js defaults recurrent_activation to hard_sigmoid, Keras to sigmoid;
    // both write it out, so the default only serves hand-written files.
    absl::StatusOr<std::string> recurrent = ActivationOption(
        c, "recurrent_activation",
        flavour == Flavour::kTfjs ? "hard_sigmoid" : "sigmoid", flavour, where);
    if (!recurrent.ok()) return recurrent.status();
    out.set_recurrent_activation(*recurrent);
  }
  const bool use_bias = GetBool(c, "use_bias").value_or(true);
  out.set_use_bias(use_bias);
  bool reset_after = false;
  if (out.cell() == v1::GRU) {
    // Keras 2 and 3 default to reset_after = true; TF.js has only false.
    reset_after = GetBool(c, "reset_after").value_or(flavour != Flavour::kTfjs);
    out.set_reset_after(reset_after);
  }
  out.set_go_backwards(GetBool(c, "go_backwards").value_or(false));
  out.set_return_sequences(GetBool(c, "return_sequences").value_or(false));
  out.set_return_state(GetBool(c, "return_state").value_or(false));

  v1::RnnWeights* w = out.mutable_weights();
  if (absl::Status s = TakeWeight(weights, weight_prefix, "kernel", where,
                                  w->mutable_kernel());
      !s.ok()) {
    return s;
  }
  if (absl::Status s = TakeWeight(weights, weight_prefix, "recurrent_kernel",
                                  where, w->mutable_recurrent_kernel());
      !s.ok()) {
    return s;
  }
  if (use_bias) {
    if (absl::Status s = TakeWeight(weights, weight_prefix, "bias", where,
                                    w->mutable_bias());
        !s.ok()) {
      return s;
    }
  }
  return out;
}

absl::StatusOr<v1::Layer> ConvertBidirectional(const KerasLayer& layer,
                                               WeightMap& weights,
                                               Flavour flavour) {
  const std::string where = layer.Label();
  const Struct& c = *layer.config;
  v1::Layer out;
  v1::BidirectionalLayer* bidi = out.mutable_bidirectional();
  bidi->set_name(layer.name);
  const Value* inner = Get(c, "layer");
  if (inner == nullptr) return Invalid(where, "no wrapped \"layer\"");
  absl::StatusOr<KerasLayer> forward = ParseLayer(*inner, where);
  if (!forward.ok()) return forward.status();
  absl::StatusOr<v1::RnnLayer> fw =
      ConvertRnn(*forward, weights, absl::StrCat(layer.name, "/forward"),
                 flavour, absl::StrCat(where, " forward ", forward->Label()));
  if (!fw.ok()) return fw.status();
  *bidi->mutable_layer() = *std::move(fw);

  const std::string backward_prefix = absl::StrCat(layer.name, "/backward");
  if (const Value* back = Get(c, "backward_layer"); back != nullptr) {
    absl::StatusOr<KerasLayer> backward = ParseLayer(*back, where);
    if (!backward.ok()) return backward.status();
    absl::StatusOr<v1::RnnLayer> bw =
        ConvertRnn(*backward, weights, backward_prefix, flavour,
                   absl::StrCat(where, " backward ", backward->Label()));
    if (!bw.ok()) return bw.status();
    *bidi->mutable_backward_layer() = *std::move(bw);
  } else {
    // Keras' default backward layer: the wrapped layer's configuration with
    // go_backwards flipped, and weights of its own.
    absl::StatusOr<v1::RnnLayer> bw =
        ConvertRnn(*forward, weights, backward_prefix, flavour,
                   absl::StrCat(where, " backward copy of ", forward->Label()));
    if (!bw.ok()) return bw.status();
    *bidi->mutable_backward_weights() = bw->weights();
  }
  // Keras' Bidirectional zeroes the outputs at masked steps; TF.js' outputs
  // each direction's state there.
  bidi->set_masked_step_output(flavour == Flavour::kTfjs
                                   ? v1::MASKED_STEP_OUTPUT_STATE
                                   : v1::MASKED_STEP_OUTPUT_ZEROS);
  const Value* merge = Get(c, "merge_mode");
  if (merge == nullptr) {
    bidi->set_merge_mode("none");  // Keras' merge_mode=None
  } else if (merge->kind_case() == Value::kStringValue) {
    bidi->set_merge_mode(merge->string_value());
  } else {
    return Invalid(where, "merge_mode must be a string or null");
  }
  return out;
}

absl::StatusOr<v1::Layer> ConvertDense(const KerasLayer& dense,
                                       absl::string_view weight_name,
                                       WeightMap& weights, Flavour flavour,
                                       absl::string_view where) {
  const Struct& c = *dense.config;
  if (absl::Status s = CheckCommonOptions(c, where); !s.ok()) return s;
  v1::Layer out;
  v1::DenseLayer* d = out.mutable_dense();
  d->set_name(std::string(weight_name));
  std::optional<double> units = GetNumber(c, "units");
  if (!units.has_value() || *units < 1) {
    return Invalid(where, "units must be a positive number");
  }
  d->set_units(ToInt32(*units));
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

// ---------------------------------------------------------------------------
// The model graph: a chain of layers, possibly with initial-state inputs to
// the first Bidirectional layer and its states as extra outputs.

// A reference to a layer's output tensor in a functional model.
struct TensorRef {
  std::string layer;
  int tensor_index = 0;
};

// The tensors a functional layer is called on: Keras 2 and TF.js write
// [[["name", node, tensor, {kwargs}], ...]]; Keras 3 writes
// [{"args": [keras tensors], "kwargs": {...}}].
absl::StatusOr<std::vector<TensorRef>> InboundTensors(const KerasLayer& layer) {
  std::vector<TensorRef> refs;
  const ListValue* nodes = GetList(*layer.entry, "inbound_nodes");
  if (nodes == nullptr || nodes->values_size() == 0) return refs;
  if (nodes->values_size() > 1) {
    return Invalid(layer.Label(),
                   "is called more than once; shared layers are not "
                   "supported");
  }
  const Value& node = nodes->values(0);
  auto add_keras3 = [&](const Value& v) -> absl::Status {
    // {"class_name": "__keras_tensor__", "config": {"keras_history": [...]}}
    const Struct* config =
        v.has_struct_value() ? GetObject(v.struct_value(), "config") : nullptr;
    const ListValue* history =
        config != nullptr ? GetList(*config, "keras_history") : nullptr;
    if (history == nullptr || history->values_size() < 3) {
      return Invalid(layer.Label(), "an inbound tensor is not understood");
    }
    refs.push_back({history->values(0).string_value(),
                    ToInt32(history->values(2).number_value())});
    return absl::OkStatus();
  };
  if (node.has_list_value()) {
    for (const Value& entry : node.list_value().values()) {
      if (!entry.has_list_value() || entry.list_value().values_size() < 3) {
        return Invalid(layer.Label(), "an inbound node is not understood");
      }
      const ListValue& e = entry.list_value();
      refs.push_back(
          {e.values(0).string_value(), ToInt32(e.values(2).number_value())});
      // Keras 2 may pass initial states as a call argument.
      if (e.values_size() > 3 && e.values(3).has_struct_value()) {
        const ListValue* states =
            GetList(e.values(3).struct_value(), "initial_state");
        for (int s = 0; states != nullptr && s < states->values_size(); ++s) {
          const Value& state = states->values(s);
          if (state.has_list_value() && state.list_value().values_size() >= 3) {
            refs.push_back(
                {state.list_value().values(0).string_value(),
                 ToInt32(state.list_value().values(2).number_value())});
          } else if (absl::Status st = add_keras3(state); !st.ok()) {
            return st;
          }
        }
      }
    }
  } else if (node.has_struct_value()) {
    const ListValue* args = GetList(node.struct_value(), "args");
    for (int a = 0; args != nullptr && a < args->values_size(); ++a) {
      const Value& arg = args->values(a);
      if (arg.has_list_value()) {  // a list of tensors as one argument
        for (const Value& v : arg.list_value().values()) {
          if (absl::Status s = add_keras3(v); !s.ok()) return s;
        }
      } else if (absl::Status s = add_keras3(arg); !s.ok()) {
        return s;
      }
    }
    const Struct* kwargs = GetObject(node.struct_value(), "kwargs");
    const ListValue* states =
        kwargs != nullptr ? GetList(*kwargs, "initial_state") : nullptr;
    for (int s = 0; states != nullptr && s < states->values_size(); ++s) {
      if (absl::Status st = add_keras3(states->values(s)); !st.ok()) return st;
    }
  } else {
    return Invalid(layer.Label(), "inbound_nodes is not understood");
  }
  return refs;
}

absl::StatusOr<std::vector<TensorRef>> ModelTensors(const Struct& config,
                                                    absl::string_view key) {
  std::vector<TensorRef> refs;
  const ListValue* list = GetList(config, key);
  if (list == nullptr) return Invalid("model config", absl::StrCat("no ", key));
  for (const Value& v : list->values()) {
    if (!v.has_list_value() || v.list_value().values_size() < 3) {
      return Invalid("model config", absl::StrCat(key, " not understood"));
    }
    refs.push_back({v.list_value().values(0).string_value(),
                    ToInt32(v.list_value().values(2).number_value())});
  }
  return refs;
}

bool IsInputLayer(const KerasLayer& layer) {
  return layer.class_name == "InputLayer";
}

// Dropout layers do nothing at inference.
bool IsInferenceNoOp(const KerasLayer& layer) {
  return layer.class_name == "Dropout" ||
         layer.class_name == "SpatialDropout1D";
}

// The last dimension of an input shape, from an InputLayer or a first
// layer's batch_input_shape; nullopt when absent or unknown.
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

class Importer {
 public:
  Importer(Flavour flavour, WeightMap& weights)
      : flavour_(flavour), weights_(weights) {}

  // Converts `layers`, in order, into a model.
  absl::StatusOr<v1::Model> Convert(const std::vector<KerasLayer>& layers) {
    v1::Model model;
    std::optional<int> input_size;
    bool first = true;  // no computing layer seen yet
    int bidirectional_count = 0;
    for (const KerasLayer& layer : layers) {
      const std::string where = layer.Label();
      if (IsInputLayer(layer)) {
        if (!input_size.has_value()) input_size = InputSize(*layer.config);
        continue;
      }
      if (first && !input_size.has_value()) {
        input_size = InputSize(*layer.config);
      }
      if (IsInferenceNoOp(layer)) continue;
      if (layer.class_name == "Masking") {
        v1::MaskingLayer* m = model.add_layers()->mutable_masking();
        m->set_name(layer.name);
        m->set_mask_value(static_cast<float>(
            GetNumber(*layer.config, "mask_value").value_or(0.0)));
      } else if (layer.class_name == "Embedding") {
        if (absl::Status s = CheckCommonOptions(*layer.config, where);
            !s.ok()) {
          return s;
        }
        v1::EmbeddingLayer* e = model.add_layers()->mutable_embedding();
        e->set_name(layer.name);
        e->set_input_dim(
            ToInt32(GetNumber(*layer.config, "input_dim").value_or(0)));
        e->set_output_dim(
            ToInt32(GetNumber(*layer.config, "output_dim").value_or(0)));
        e->set_mask_zero(GetBool(*layer.config, "mask_zero").value_or(false));
        if (absl::Status s = TakeWeight(weights_, layer.name, "embeddings",
                                        where, e->mutable_embeddings());
            !s.ok()) {
          return s;
        }
      } else if (layer.class_name == "Bidirectional") {
        absl::StatusOr<v1::Layer> bidi =
            ConvertBidirectional(layer, weights_, flavour_);
        if (!bidi.ok()) return bidi.status();
        ++bidirectional_count;
        *model.add_layers() = *std::move(bidi);
      } else if (layer.class_name == "Dense") {
        absl::StatusOr<v1::Layer> dense =
            ConvertDense(layer, layer.name, weights_, flavour_, where);
        if (!dense.ok()) return dense.status();
        *model.add_layers() = *std::move(dense);
      } else if (layer.class_name == "TimeDistributed") {
        const Value* inner = Get(*layer.config, "layer");
        absl::StatusOr<KerasLayer> wrapped =
            inner != nullptr ? ParseLayer(*inner, where)
                             : absl::StatusOr<KerasLayer>(
                                   Invalid(where, "no wrapped \"layer\""));
        if (!wrapped.ok()) return wrapped.status();
        if (wrapped->class_name != "Dense") {
          return Invalid(where,
                         absl::StrCat("TimeDistributed(", wrapped->class_name,
                                      ") is not supported; only "
                                      "TimeDistributed(Dense)"));
        }
        absl::StatusOr<v1::Layer> dense =
            ConvertDense(*wrapped, layer.name, weights_, flavour_,
                         absl::StrCat(where, " over ", wrapped->Label()));
        if (!dense.ok()) return dense.status();
        *model.add_layers() = *std::move(dense);
      } else if (layer.class_name == "LSTM" || layer.class_name == "GRU" ||
                 layer.class_name == "SimpleRNN") {
        return Invalid(where,
                       "a recurrent layer outside a Bidirectional wrapper is "
                       "not supported; biserve serves Bidirectional layers");
      } else {
        return Invalid(
            where,
            "layer type not supported; biserve imports InputLayer, Masking, "
            "Embedding, Dropout, Bidirectional (LSTM, GRU, SimpleRNN), Dense "
            "and TimeDistributed(Dense)");
      }
      first = false;
    }
    if (bidirectional_count == 0) {
      return Invalid("model", "has no Bidirectional layer");
    }
    const bool token_input =
        model.layers_size() > 0 && model.layers(0).has_embedding();
    if (!token_input) {
      if (!input_size.has_value() || *input_size <= 0) {
        return Invalid("model",
                       "the input's feature size is unknown; give the model "
                       "an input shape with a fixed last dimension");
      }
      model.set_input_dim(*input_size);
    }
    return model;
  }

 private:
  const Flavour flavour_;
  WeightMap& weights_;  // not owned; weights are marked used as taken
};

// Orders a functional model's layers as a chain, and checks that its extra
// inputs are initial states of the first Bidirectional layer and its extra
// outputs the last Bidirectional layer's states. Returns the layers in order
// (without the state inputs) and the number of initial-state inputs.
absl::StatusOr<std::pair<std::vector<KerasLayer>, int>> FunctionalChain(
    const Struct& config) {
  const ListValue* list = GetList(config, "layers");
  if (list == nullptr) return Invalid("model config", "no layers list");
  std::vector<KerasLayer> layers;
  for (int i = 0; i < list->values_size(); ++i) {
    absl::StatusOr<KerasLayer> layer =
        ParseLayer(list->values(i), absl::StrCat("layers[", i, "]"));
    if (!layer.ok()) return layer.status();
    layers.push_back(*std::move(layer));
  }
  absl::StatusOr<std::vector<TensorRef>> inputs =
      ModelTensors(config, "input_layers");
  if (!inputs.ok()) return inputs.status();
  absl::StatusOr<std::vector<TensorRef>> outputs =
      ModelTensors(config, "output_layers");
  if (!outputs.ok()) return outputs.status();

  std::set<std::string> input_names;
  for (const TensorRef& ref : *inputs) input_names.insert(ref.layer);
  // Walk the layers in their (topological) order: each computing layer's
  // first input must be the previous computing layer's output, or the data
  // input for the first.
  std::vector<KerasLayer> chain;
  std::string previous;  // the last computing layer, or the data input
  std::set<std::string> state_inputs;
  std::string last_bidirectional;
  bool first_bidirectional_seen = false;
  for (const KerasLayer& layer : layers) {
    if (IsInputLayer(layer)) {
      chain.push_back(layer);
      continue;
    }
    absl::StatusOr<std::vector<TensorRef>> inbound = InboundTensors(layer);
    if (!inbound.ok()) return inbound.status();
    if (inbound->empty()) {
      return Invalid(layer.Label(), "has no inputs");
    }
    const TensorRef& main = inbound->front();
    if (previous.empty()) {
      if (!input_names.count(main.layer)) {
        return Invalid(layer.Label(),
                       absl::StrCat("takes its input from '", main.layer,
                                    "', not a model input"));
      }
      previous = main.layer;
      // The data input goes first in our chain.
      std::stable_partition(
          chain.begin(), chain.end(),
          [&](const KerasLayer& l) { return l.name == main.layer; });
    }
    if (main.layer != previous || main.tensor_index != 0) {
      return Invalid(layer.Label(),
                     absl::StrCat("takes its input from '", main.layer,
                                  "' (output ", main.tensor_index,
                                  "), but biserve imports a chain of "
                                  "layers, each fed by the one before ('",
                                  previous, "')"));
    }
    if (inbound->size() > 1) {
      if (layer.class_name != "Bidirectional" || first_bidirectional_seen) {
        return Invalid(layer.Label(),
                       "has more than one input; only the first "
                       "Bidirectional layer may take extra inputs (its "
                       "initial states)");
      }
      for (size_t k = 1; k < inbound->size(); ++k) {
        const TensorRef& state = (*inbound)[k];
        if (!input_names.count(state.layer)) {
          return Invalid(layer.Label(),
                         absl::StrCat("initial state ", k - 1, " comes from '",
                                      state.layer,
                                      "', not a model input; biserve takes "
                                      "initial states from the request"));
        }
        state_inputs.insert(state.layer);
      }
    }
    if (layer.class_name == "Bidirectional") {
      first_bidirectional_seen = true;
      last_bidirectional = layer.name;
    }
    previous = layer.name;
    chain.push_back(layer);
  }
  for (const std::string& name : input_names) {
    if (name != chain.front().name && !state_inputs.count(name)) {
      return Invalid("model", absl::StrCat("input '", name,
                                           "' feeds neither the first layer "
                                           "nor a Bidirectional layer's "
                                           "initial state"));
    }
  }
  // Outputs: the last layer's output (both directions for merge mode none),
  // then optionally the last Bidirectional layer's states, which biserve
  // returns on request.
  for (size_t k = 0; k < outputs->size(); ++k) {
    const TensorRef& out = (*outputs)[k];
    const bool main_output = out.layer == previous;
    const bool state_output = out.layer == last_bidirectional;
    if (!main_output && !state_output) {
      return Invalid(
          "model",
          absl::StrCat("output '", out.layer, "' (output ", out.tensor_index,
                       ") is neither the last layer's output nor "
                       "the last Bidirectional layer's states"));
    }
  }
  // Drop state inputs from the chain: the request carries them.
  std::vector<KerasLayer> ordered;
  for (const KerasLayer& layer : chain) {
    if (!state_inputs.count(layer.name)) ordered.push_back(layer);
  }
  return std::make_pair(ordered, static_cast<int>(state_inputs.size()));
}

}  // namespace

absl::StatusOr<v1::Model> ImportTfjsLayersModel(
    const std::string& model_json_path, const TfjsImportOptions& options) {
  absl::StatusOr<std::string> text = ReadFile(model_json_path, "model.json");
  if (!text.ok()) return text.status();
  Struct root;
  auto parsed = google::protobuf::util::JsonStringToMessage(*text, &root);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        model_json_path, ": not valid JSON: ", std::string(parsed.message())));
  }
  const Struct* topology = GetObject(root, "modelTopology");
  if (topology == nullptr) {
    return Invalid(model_json_path,
                   "no modelTopology: not a TensorFlow.js Layers model (a "
                   "graph model from tf.saved_model cannot be imported)");
  }
  // tensorflowjs_converter nests the Keras config under model_config;
  // TF.js' own model.save makes modelTopology the config itself.
  const Struct* model_config = GetObject(*topology, "model_config");
  if (model_config == nullptr) model_config = topology;
  const std::string keras_version =
      GetString(*topology, "keras_version").value_or("");
  Flavour flavour = Flavour::kKeras2;
  if (absl::StartsWith(keras_version, "tfjs")) {
    flavour = Flavour::kTfjs;
  } else if (absl::StartsWith(keras_version, "3.")) {
    flavour = Flavour::kKeras3;
  }

  const std::filesystem::path folder =
      std::filesystem::path(model_json_path).parent_path();
  absl::StatusOr<WeightMap> weights = ReadWeights(root, folder);
  if (!weights.ok()) return weights.status();

  const std::string class_name =
      GetString(*model_config, "class_name").value_or("");
  const Value* config_value = Get(*model_config, "config");
  if (config_value == nullptr) {
    return Invalid(model_json_path, "the model config has no \"config\"");
  }
  std::vector<KerasLayer> layers;
  int initial_state_inputs = 0;
  std::string keras_name;
  if (class_name == "Sequential") {
    // Keras 2 and TF.js: {"name": ..., "layers": [...]}; old Keras: [...].
    const ListValue* list =
        config_value->has_list_value() ? &config_value->list_value()
        : config_value->has_struct_value()
            ? GetList(config_value->struct_value(), "layers")
            : nullptr;
    if (list == nullptr) {
      return Invalid(model_json_path, "the Sequential config has no layers");
    }
    if (config_value->has_struct_value()) {
      keras_name = GetString(config_value->struct_value(), "name").value_or("");
    }
    for (int i = 0; i < list->values_size(); ++i) {
      absl::StatusOr<KerasLayer> layer =
          ParseLayer(list->values(i), absl::StrCat("layers[", i, "]"));
      if (!layer.ok()) return layer.status();
      layers.push_back(*std::move(layer));
    }
  } else if (class_name == "Functional" || class_name == "Model") {
    if (!config_value->has_struct_value()) {
      return Invalid(model_json_path, "the model config is not an object");
    }
    keras_name = GetString(config_value->struct_value(), "name").value_or("");
    auto chain = FunctionalChain(config_value->struct_value());
    if (!chain.ok()) return chain.status();
    layers = std::move(chain->first);
    initial_state_inputs = chain->second;
  } else {
    return Invalid(model_json_path,
                   absl::StrCat("model class '", class_name,
                                "' is not supported; expected Sequential or "
                                "a functional model"));
  }

  Importer importer(flavour, *weights);
  absl::StatusOr<v1::Model> model = importer.Convert(layers);
  if (!model.ok()) return model.status();
  model->set_name(options.model_name.empty() ? keras_name : options.model_name);
  for (const auto& [name, weight] : *weights) {
    if (!weight.used) {
      return Invalid(model_json_path,
                     absl::StrCat("weight '", name,
                                  "' in the manifest belongs to no imported "
                                  "layer"));
    }
  }
  absl::StatusOr<std::shared_ptr<const Model>> check =
      Model::Create(ModelSpecFromProto(*model));
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
        model_json_path,
        absl::StrCat("the model feeds ", initial_state_inputs,
                     " initial-state inputs to '", first.name, "', which has ",
                     first.state_count(), " states"));
  }
  return model;
}

}  // namespace biserve
