#include "importers/keras_functional_chain.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "importers/import_error.h"
#include "importers/json_fields.h"

namespace biserve::importers {
namespace {

using google::protobuf::ListValue;
using google::protobuf::Struct;
using google::protobuf::Value;

// ["name", node, tensor, ...] (Keras 2, TF.js). REQUIRES: 3 values or more.
TensorRef ListTensorRef(const ListValue& ref) {
  return {ref.values(0).string_value(), ToInt32(ref.values(2).number_value())};
}

// Keras 3: {"class_name": "__keras_tensor__",
//           "config": {"keras_history": ["name", node, tensor]}}
absl::StatusOr<TensorRef> KerasTensorRef(const Value& v,
                                         const KerasLayer& layer) {
  const Struct* config =
      v.has_struct_value() ? GetObject(v.struct_value(), "config") : nullptr;
  const ListValue* history =
      config != nullptr ? GetList(*config, "keras_history") : nullptr;
  if (history == nullptr || history->values_size() < 3) {
    return Invalid(layer.Label(), "an inbound tensor is not understood");
  }
  return ListTensorRef(*history);
}

absl::Status AddKerasTensor(const Value& v, const KerasLayer& layer,
                            std::vector<TensorRef>& refs) {
  absl::StatusOr<TensorRef> ref = KerasTensorRef(v, layer);
  if (!ref.ok()) return ref.status();
  refs.push_back(*std::move(ref));
  return absl::OkStatus();
}

// Appends the Keras 3 tensors `values` (each one tensor) to `refs`.
absl::Status AddKerasTensors(const ListValue& values, const KerasLayer& layer,
                             std::vector<TensorRef>& refs) {
  for (const Value& v : values.values()) {
    if (absl::Status s = AddKerasTensor(v, layer, refs); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// Keras 2 may pass initial states as a call argument, each a list ref or
// (saved by tf.keras under Keras 3) a Keras tensor.
absl::Status AddKeras2States(const ListValue& states, const KerasLayer& layer,
                             std::vector<TensorRef>& refs) {
  for (const Value& state : states.values()) {
    if (state.has_list_value() && state.list_value().values_size() >= 3) {
      refs.push_back(ListTensorRef(state.list_value()));
    } else if (absl::Status s = AddKerasTensor(state, layer, refs); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

// [["name", node, tensor, {kwargs}], ...]
absl::Status AddKeras2Node(const ListValue& node, const KerasLayer& layer,
                           std::vector<TensorRef>& refs) {
  for (const Value& entry : node.values()) {
    if (!entry.has_list_value() || entry.list_value().values_size() < 3) {
      return Invalid(layer.Label(), "an inbound node is not understood");
    }
    const ListValue& e = entry.list_value();
    refs.push_back(ListTensorRef(e));
    const ListValue* states =
        e.values_size() > 3 && e.values(3).has_struct_value()
            ? GetList(e.values(3).struct_value(), "initial_state")
            : nullptr;
    if (states == nullptr) continue;
    if (absl::Status s = AddKeras2States(*states, layer, refs); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

// {"args": [tensor or list of tensors, ...], "kwargs": {"initial_state"}}
absl::Status AddKeras3Node(const Struct& node, const KerasLayer& layer,
                           std::vector<TensorRef>& refs) {
  const ListValue* args = GetList(node, "args");
  for (int a = 0; args != nullptr && a < args->values_size(); ++a) {
    const Value& arg = args->values(a);
    const absl::Status s =
        arg.has_list_value()  // a list of tensors as one argument
            ? AddKerasTensors(arg.list_value(), layer, refs)
            : AddKerasTensor(arg, layer, refs);
    if (!s.ok()) return s;
  }
  const Struct* kwargs = GetObject(node, "kwargs");
  const ListValue* states =
      kwargs != nullptr ? GetList(*kwargs, "initial_state") : nullptr;
  return states != nullptr ? AddKerasTensors(*states, layer, refs)
                           : absl::OkStatus();
}

// The model's "input_layers" or "output_layers": [["name", node, tensor]],
// or Keras 3's ["name", node, tensor] for a single one.
absl::StatusOr<std::vector<TensorRef>> ModelTensors(const Struct& config,
                                                    absl::string_view key) {
  std::vector<TensorRef> refs;
  const ListValue* list = GetList(config, key);
  if (list == nullptr) return Invalid("model config", absl::StrCat("no ", key));
  if (list->values_size() >= 3 &&
      list->values(0).kind_case() == Value::kStringValue) {
    refs.push_back(ListTensorRef(*list));
    return refs;
  }
  for (const Value& v : list->values()) {
    if (!v.has_list_value() || v.list_value().values_size() < 3) {
      return Invalid("model config", absl::StrCat(key, " not understood"));
    }
    refs.push_back(ListTensorRef(v.list_value()));
  }
  return refs;
}

// Walks a functional model's layers in their (topological) order: each
// computing layer's first input must be the previous computing layer's
// output, or the data input for the first.
class ChainWalk {
 public:
  explicit ChainWalk(const std::vector<TensorRef>& inputs) {
    for (const TensorRef& ref : inputs) input_names_.insert(ref.layer);
  }

  absl::Status Add(const KerasLayer& layer) {
    if (IsInputLayer(layer)) {
      chain_.push_back(layer);
      return absl::OkStatus();
    }
    absl::StatusOr<std::vector<TensorRef>> inbound = InboundTensors(layer);
    if (!inbound.ok()) return inbound.status();
    if (inbound->empty()) return Invalid(layer.Label(), "has no inputs");
    if (absl::Status s = TakeMainInput(layer, inbound->front()); !s.ok()) {
      return s;
    }
    if (absl::Status s = TakeStateInputs(layer, *inbound); !s.ok()) return s;
    if (layer.class_name == "Bidirectional") {
      first_bidirectional_seen_ = true;
      last_bidirectional_ = layer.name;
    }
    previous_ = layer.name;
    chain_.push_back(layer);
    return absl::OkStatus();
  }

  // Every model input feeds the first layer or an initial state.
  absl::Status CheckInputsUsed() const {
    for (const std::string& name : input_names_) {
      // A model without layers has no first layer that an input could feed.
      const bool data_input = !chain_.empty() && name == chain_.front().name;
      if (!data_input && !state_inputs_.count(name)) {
        return Invalid("model", absl::StrCat("input '", name,
                                             "' feeds neither the first layer "
                                             "nor a Bidirectional layer's "
                                             "initial state"));
      }
    }
    return absl::OkStatus();
  }

  // Outputs: the last layer's output (both directions for merge mode none),
  // then optionally the last Bidirectional layer's states, which biserve
  // returns on request.
  absl::Status CheckOutputs(const std::vector<TensorRef>& outputs) const {
    for (const TensorRef& out : outputs) {
      if (out.layer != previous_ && out.layer != last_bidirectional_) {
        return Invalid(
            "model",
            absl::StrCat("output '", out.layer, "' (output ", out.tensor_index,
                         ") is neither the last layer's output nor "
                         "the last Bidirectional layer's states"));
      }
    }
    return absl::OkStatus();
  }

  // The chain without the state inputs: the request carries them.
  KerasChain Finish() const {
    KerasChain result;
    for (const KerasLayer& layer : chain_) {
      if (!state_inputs_.count(layer.name)) result.layers.push_back(layer);
    }
    result.initial_state_inputs = static_cast<int>(state_inputs_.size());
    return result;
  }

 private:
  absl::Status TakeMainInput(const KerasLayer& layer, const TensorRef& main) {
    if (previous_.empty()) {
      if (!input_names_.count(main.layer)) {
        return Invalid(layer.Label(),
                       absl::StrCat("takes its input from '", main.layer,
                                    "', not a model input"));
      }
      previous_ = main.layer;
      // The data input goes first in our chain.
      std::stable_partition(
          chain_.begin(), chain_.end(),
          [&](const KerasLayer& l) { return l.name == main.layer; });
    }
    if (main.layer != previous_ || main.tensor_index != 0) {
      return Invalid(layer.Label(),
                     absl::StrCat("takes its input from '", main.layer,
                                  "' (output ", main.tensor_index,
                                  "), but biserve imports a chain of "
                                  "layers, each fed by the one before ('",
                                  previous_, "')"));
    }
    return absl::OkStatus();
  }

  // Inputs after the first: only the first Bidirectional layer's initial
  // states, from model inputs.
  absl::Status TakeStateInputs(const KerasLayer& layer,
                               const std::vector<TensorRef>& inbound) {
    if (inbound.size() <= 1) return absl::OkStatus();
    if (layer.class_name != "Bidirectional" || first_bidirectional_seen_) {
      return Invalid(layer.Label(),
                     "has more than one input; only the first "
                     "Bidirectional layer may take extra inputs (its "
                     "initial states)");
    }
    for (size_t k = 1; k < inbound.size(); ++k) {
      const TensorRef& state = inbound[k];
      if (!input_names_.count(state.layer)) {
        return Invalid(
            layer.Label(),
            absl::StrCat("initial state ", k - 1, " comes from '", state.layer,
                         "', not a model input; biserve takes "
                         "initial states from the request"));
      }
      state_inputs_.insert(state.layer);
    }
    return absl::OkStatus();
  }

  std::set<std::string> input_names_;
  std::vector<KerasLayer> chain_;
  std::string previous_;  // the last computing layer, or the data input
  std::set<std::string> state_inputs_;
  std::string last_bidirectional_;
  bool first_bidirectional_seen_ = false;
};

}  // namespace

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
  absl::Status s = absl::OkStatus();
  if (node.has_list_value()) {
    s = AddKeras2Node(node.list_value(), layer, refs);
  } else if (node.has_struct_value()) {
    s = AddKeras3Node(node.struct_value(), layer, refs);
  } else {
    s = Invalid(layer.Label(), "inbound_nodes is not understood");
  }
  if (!s.ok()) return s;
  return refs;
}

absl::StatusOr<KerasChain> FunctionalChain(const Struct& config) {
  const ListValue* list = GetList(config, "layers");
  if (list == nullptr) return Invalid("model config", "no layers list");
  absl::StatusOr<std::vector<KerasLayer>> layers = ParseKerasLayers(*list);
  if (!layers.ok()) return layers.status();
  absl::StatusOr<std::vector<TensorRef>> inputs =
      ModelTensors(config, "input_layers");
  if (!inputs.ok()) return inputs.status();
  absl::StatusOr<std::vector<TensorRef>> outputs =
      ModelTensors(config, "output_layers");
  if (!outputs.ok()) return outputs.status();
  ChainWalk walk(*inputs);
  for (const KerasLayer& layer : *layers) {
    if (absl::Status s = walk.Add(layer); !s.ok()) return s;
  }
  if (absl::Status s = walk.CheckInputsUsed(); !s.ok()) return s;
  if (absl::Status s = walk.CheckOutputs(*outputs); !s.ok()) return s;
  return walk.Finish();
}

}  // namespace biserve::importers
