#include "proto/open_inference_codec.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <variant>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/quoted_input.h"

namespace biserve {
namespace {

using InputTensor = inference::ModelInferRequest::InferInputTensor;

// A client's shape, for a message: its first dimensions only, since a
// request may claim thousands.
std::string Shape(const google::protobuf::RepeatedField<int64_t>& shape) {
  constexpr int kShown = 8;
  if (shape.size() <= kShown) {
    return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
  }
  return absl::StrCat(
      "[", absl::StrJoin(shape.begin(), shape.begin() + kShown, ", "),
      ", ...] (", shape.size(), " dimensions)");
}

// Position of the first value of `values` that is not finite, or -1.
int64_t FirstNonFinite(absl::Span<const float> values) {
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) return static_cast<int64_t>(i);
  }
  return -1;
}

// INVALID_ARGUMENT naming element `index` of input `name` (its position in
// the client's tensor) and its non-finite `value`.
absl::Status NonFiniteError(absl::string_view name,
                            const std::vector<int64_t>& index, float value,
                            absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("input ", QuotedInput(name), ": element [",
                   absl::StrJoin(index, ", "), "] is ",
                   std::isnan(value) ? "NaN"
                   : value > 0       ? "+Inf"
                                     : "-Inf",
                   "; ", what,
                   " must be finite (unless the server runs with "
                   "--allow_non_finite)"));
}

// "input 'name'", the client's tensor name quoted (QuotedInput).
std::string InputName(absl::string_view name) {
  return absl::StrCat("input ", QuotedInput(name));
}

// The Keras names of a Bidirectional layer's states, in order.
std::vector<std::pair<std::string, const RnnDirection*>> States(
    const BidirectionalLayer& layer) {
  std::vector<std::pair<std::string, const RnnDirection*>> states;
  for (const auto& [prefix, d] : {std::pair{"forward", &layer.forward},
                                  std::pair{"backward", &layer.backward}}) {
    states.emplace_back(absl::StrCat(prefix, "_h"), d);
    if (d->cell == CellType::kLstm) {
      states.emplace_back(absl::StrCat(prefix, "_c"), d);
    }
  }
  return states;
}

std::vector<const BidirectionalLayer*> BidirectionalLayers(const Model& model) {
  std::vector<const BidirectionalLayer*> layers;
  for (const StackLayer& layer : model.layers()) {
    if (const auto* b = std::get_if<BidirectionalLayer>(&layer)) {
      layers.push_back(b);
    }
  }
  return layers;
}

// The values of input `index` as T (float or integer), from its typed
// contents or its raw bytes.
template <typename T>
absl::StatusOr<std::vector<T>> Values(
    const inference::ModelInferRequest& request, int index, int64_t count) {
  const InputTensor& input = request.inputs(index);
  std::vector<T> values;
  if (request.raw_input_contents_size() > 0) {
    const std::string& raw = request.raw_input_contents(index);
    const std::string& type = input.datatype();
    const size_t element = (type == "INT64") ? 8 : 4;
    if (raw.size() != static_cast<size_t>(count) * element) {
      return absl::InvalidArgumentError(absl::StrCat(
          "raw_input_contents[", index, "] (", InputName(input.name()), ", ",
          QuotedInput(type), " ", Shape(input.shape()), "): expected ",
          count * element, " bytes, got ", raw.size()));
    }
    values.resize(count);
    if (type == "INT64") {
      for (int64_t i = 0; i < count; ++i) {
        int64_t v;
        std::memcpy(&v, raw.data() + 8 * i, 8);
        values[i] = static_cast<T>(v);
      }
    } else if (type == "INT32") {
      for (int64_t i = 0; i < count; ++i) {
        int32_t v;
        std::memcpy(&v, raw.data() + 4 * i, 4);
        values[i] = static_cast<T>(v);
      }
    } else {
      static_assert(sizeof(float) == 4);
      for (int64_t i = 0; i < count; ++i) {
        float v;
        std::memcpy(&v, raw.data() + 4 * i, 4);
        values[i] = static_cast<T>(v);
      }
    }
    return values;
  }
  const inference::InferTensorContents& c = input.contents();
  int64_t given = 0;
  if (input.datatype() == "FP32") {
    given = c.fp32_contents_size();
    values.assign(c.fp32_contents().begin(), c.fp32_contents().end());
  } else if (input.datatype() == "INT32") {
    given = c.int_contents_size();
    values.assign(c.int_contents().begin(), c.int_contents().end());
  } else if (input.datatype() == "INT64") {
    given = c.int64_contents_size();
    values.assign(c.int64_contents().begin(), c.int64_contents().end());
  }
  if (given != count) {
    return absl::InvalidArgumentError(absl::StrCat(
        InputName(input.name()), " (", QuotedInput(input.datatype()), " ",
        Shape(input.shape()), "): expected ", count,
        " values in contents, got ", given));
  }
  return values;
}

// max_elements: the request's size in bytes. Every value takes at least one
// byte, so a shape claiming more elements cannot be backed by its values;
// rejecting it here keeps the products of dimensions from overflowing and
// nothing is sized by the shape before the values are counted.
absl::Status CheckShape(const InputTensor& input,
                        const std::vector<int64_t>& expected,
                        const std::string& pattern, int64_t max_elements) {
  bool ok = input.shape_size() == static_cast<int>(expected.size());
  int64_t elements = 1;
  for (int i = 0; ok && i < input.shape_size(); ++i) {
    ok = input.shape(i) >= 1 &&
         (expected[i] < 0 || input.shape(i) == expected[i]);
    if (ok && input.shape(i) > max_elements / elements) {
      return absl::InvalidArgumentError(absl::StrCat(
          InputName(input.name()), ": shape ", Shape(input.shape()),
          " has more elements than the request carries values"));
    }
    if (ok) elements *= input.shape(i);
  }
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(InputName(input.name()), ": expected shape ", pattern,
                   ", got ", Shape(input.shape())));
}

absl::Status CheckType(const InputTensor& input,
                       std::initializer_list<const char*> types) {
  for (const char* t : types) {
    if (input.datatype() == t) return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      InputName(input.name()), ": expected datatype ",
      absl::StrJoin(types, " or "), ", got ", QuotedInput(input.datatype())));
}

void AppendRaw(const std::vector<float>& values, std::string* raw) {
  raw->append(reinterpret_cast<const char*>(values.data()),
              values.size() * sizeof(float));
}

}  // namespace

std::vector<OpenTensorSpec> OpenInferenceInputs(const Model& model) {
  std::vector<OpenTensorSpec> specs;
  if (model.takes_token_ids()) {
    specs.push_back({"token_ids", "INT32", {-1, -1}});
  } else {
    specs.push_back({"features", "FP32", {-1, -1, model.input_dim()}});
  }
  specs.push_back({"lengths", "INT32", {-1}});
  const BidirectionalLayer& first =
      model.bidirectional(model.first_bidirectional());
  for (const auto& [name, d] : States(first)) {
    specs.push_back({absl::StrCat("initial_state/", first.name, "/", name),
                     "FP32",
                     {-1, d->units}});
  }
  return specs;
}

std::vector<OpenTensorSpec> OpenInferenceOutputs(const Model& model) {
  std::vector<OpenTensorSpec> specs;
  auto shape = [](bool sequences, int width) {
    return sequences ? std::vector<int64_t>{-1, -1, width}
                     : std::vector<int64_t>{-1, width};
  };
  if (model.output_size() > 0) {
    specs.push_back({"output", "FP32",
                     shape(model.returns_sequences(), model.output_size())});
  }
  const BidirectionalLayer& last =
      model.bidirectional(model.last_bidirectional());
  specs.push_back(
      {"forward", "FP32", shape(last.return_sequences, last.forward.units)});
  specs.push_back(
      {"backward", "FP32", shape(last.return_sequences, last.backward.units)});
  for (const BidirectionalLayer* layer : BidirectionalLayers(model)) {
    for (const auto& [name, d] : States(*layer)) {
      specs.push_back({absl::StrCat("state/", layer->name, "/", name),
                       "FP32",
                       {-1, d->units}});
    }
  }
  return specs;
}

absl::StatusOr<OpenInferCall> PredictRequestFromInfer(
    const inference::ModelInferRequest& request, const Model& model) {
  RequestLimits unchecked;
  unchecked.allow_non_finite = true;  // SequencesFromRequest checks later
  return PredictRequestFromInfer(request, model, unchecked);
}

absl::StatusOr<OpenInferCall> PredictRequestFromInfer(
    const inference::ModelInferRequest& request, const Model& model,
    const RequestLimits& limits) {
  if (request.raw_input_contents_size() > 0 &&
      request.raw_input_contents_size() != request.inputs_size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "raw_input_contents has ", request.raw_input_contents_size(),
        " entries for ", request.inputs_size(),
        " inputs; give one per input, or none"));
  }
  const std::string data_name =
      model.takes_token_ids() ? "token_ids" : "features";
  // What the model takes, for messages: the input's name, datatype and
  // shape.
  const std::string data_spec =
      model.takes_token_ids()
          ? "token_ids (INT32 or INT64 [batch, time], an Embedding input)"
          : absl::StrCat("features (FP32 [batch, time, ", model.input_dim(),
                         "])");
  int data = -1, lengths = -1;
  std::map<std::string, int> states;
  const BidirectionalLayer& first =
      model.bidirectional(model.first_bidirectional());
  std::set<std::string> seen;
  for (int i = 0; i < request.inputs_size(); ++i) {
    const std::string& name = request.inputs(i).name();
    if (!seen.insert(name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(InputName(name), " is given twice"));
    }
    if (request.raw_input_contents_size() > 0 &&
        request.inputs(i).has_contents()) {
      return absl::InvalidArgumentError(absl::StrCat(
          InputName(name),
          " has contents although raw_input_contents is used; give every "
          "input's data one way"));
    }
    if (name == data_name) {
      data = i;
    } else if (name == "lengths") {
      lengths = i;
    } else if (absl::StartsWith(name, "initial_state/")) {
      states[name] = i;
    } else if (name == "features" || name == "token_ids") {
      // The other kind of input: name the one this model takes.
      return absl::InvalidArgumentError(absl::StrCat(
          InputName(name), ": model ", QuotedInput(request.model_name()),
          " takes ", data_spec, ", not ", name));
    } else {
      std::vector<std::string> names;
      for (const OpenTensorSpec& s : OpenInferenceInputs(model)) {
        names.push_back(s.name);
      }
      return absl::InvalidArgumentError(
          absl::StrCat("unknown ", InputName(name),
                       "; this model takes: ", absl::StrJoin(names, ", ")));
    }
  }
  if (data < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("input '", data_name, "' is missing: model ",
                     QuotedInput(request.model_name()), " takes ", data_spec));
  }
  const InputTensor& input = request.inputs(data);
  const int64_t max_elements = static_cast<int64_t>(request.ByteSizeLong());
  int64_t batch, steps;
  OpenInferCall call;
  v1::PredictRequest& predict = call.request;
  if (model.takes_token_ids()) {
    if (auto s = CheckType(input, {"INT32", "INT64"}); !s.ok()) return s;
    if (auto s = CheckShape(input, {-1, -1}, "[batch, time]", max_elements);
        !s.ok()) {
      return s;
    }
    batch = input.shape(0);
    steps = input.shape(1);
  } else {
    if (auto s = CheckType(input, {"FP32"}); !s.ok()) return s;
    if (auto s =
            CheckShape(input, {-1, -1, model.input_dim()},
                       absl::StrCat("[batch, time, ", model.input_dim(), "]"),
                       max_elements);
        !s.ok()) {
      return s;
    }
    batch = input.shape(0);
    steps = input.shape(1);
  }
  call.time_steps = steps;
  std::vector<int64_t> length(batch, steps);
  if (lengths >= 0) {
    const InputTensor& l = request.inputs(lengths);
    if (auto s = CheckType(l, {"INT32", "INT64"}); !s.ok()) return s;
    if (auto s = CheckShape(l, {batch}, absl::StrCat("[", batch, "] (batch)"),
                            max_elements);
        !s.ok()) {
      return s;
    }
    auto values = Values<int64_t>(request, lengths, batch);
    if (!values.ok()) return values.status();
    for (int64_t b = 0; b < batch; ++b) {
      if ((*values)[b] < 1 || (*values)[b] > steps) {
        return absl::InvalidArgumentError(
            absl::StrCat("input 'lengths': lengths[", b, "] = ", (*values)[b],
                         " is outside [1, ", steps,
                         "] (the time dimension of '", data_name, "')"));
      }
      length[b] = (*values)[b];
    }
  }
  const int64_t width = model.takes_token_ids() ? 1 : model.input_dim();
  if (model.takes_token_ids()) {
    auto values = Values<int64_t>(request, data, batch * steps);
    if (!values.ok()) return values.status();
    for (int64_t b = 0; b < batch; ++b) {
      v1::Sequence* s = predict.add_sequences();
      s->set_length(length[b]);
      for (int64_t t = 0; t < length[b]; ++t) {
        const int64_t id = (*values)[b * steps + t];
        const int64_t vocabulary = model.embedding()->embeddings.rows();
        if (id < 0 || id >= vocabulary) {
          return absl::InvalidArgumentError(absl::StrCat(
              "input 'token_ids': token_ids[", b, "][", t, "] = ", id,
              " is outside the vocabulary [0, ", vocabulary, ")"));
        }
        s->add_token_ids(static_cast<int32_t>(id));
      }
    }
  } else {
    auto values = Values<float>(request, data, batch * steps * width);
    if (!values.ok()) return values.status();
    for (int64_t b = 0; b < batch; ++b) {
      v1::Sequence* s = predict.add_sequences();
      s->set_length(length[b]);
      const float* begin = values->data() + b * steps * width;
      // Only the real steps: padding past lengths[b] is never computed.
      if (const int64_t v = limits.allow_non_finite
                                ? -1
                                : FirstNonFinite(absl::MakeConstSpan(
                                      begin, length[b] * width));
          v >= 0) {
        return NonFiniteError("features", {b, v / width, v % width}, begin[v],
                              "inputs");
      }
      s->mutable_features()->Assign(begin, begin + length[b] * width);
    }
  }
  if (!states.empty()) {
    for (const auto& [name, d] : States(first)) {
      const std::string full =
          absl::StrCat("initial_state/", first.name, "/", name);
      auto it = states.find(full);
      if (it == states.end()) {
        std::vector<std::string> names;
        for (const auto& [n, unused] : States(first)) {
          names.push_back(absl::StrCat("initial_state/", first.name, "/", n));
        }
        return absl::InvalidArgumentError(absl::StrCat(
            InputName(full), " is missing: give all initial states (",
            absl::StrJoin(names, ", "), ") or none"));
      }
      const InputTensor& t = request.inputs(it->second);
      if (auto s = CheckType(t, {"FP32"}); !s.ok()) return s;
      if (auto s = CheckShape(t, {batch, d->units},
                              absl::StrCat("[", batch, ", ", d->units, "]"),
                              max_elements);
          !s.ok()) {
        return s;
      }
      auto values = Values<float>(request, it->second, batch * d->units);
      if (!values.ok()) return values.status();
      if (const int64_t v =
              limits.allow_non_finite ? -1 : FirstNonFinite(*values);
          v >= 0) {
        return NonFiniteError(full, {v / d->units, v % d->units}, (*values)[v],
                              "initial states");
      }
      for (int64_t b = 0; b < batch; ++b) {
        v1::Tensor* state = predict.mutable_sequences(b)->add_initial_state();
        state->add_shape(d->units);
        state->mutable_values()->Assign(values->begin() + b * d->units,
                                        values->begin() + (b + 1) * d->units);
      }
      states.erase(it);
    }
    if (!states.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown ", InputName(states.begin()->first),
                       "; initial states are named initial_state/", first.name,
                       "/<forward_h|forward_c|backward_h|backward_c>"));
    }
  }

  // Outputs: the named ones, or the model's default.
  const std::vector<OpenTensorSpec> available = OpenInferenceOutputs(model);
  for (const auto& requested : request.outputs()) {
    bool known = false;
    for (const OpenTensorSpec& s : available)
      known |= s.name == requested.name();
    if (!known) {
      std::vector<std::string> names;
      for (const OpenTensorSpec& s : available) names.push_back(s.name);
      return absl::InvalidArgumentError(
          absl::StrCat("unknown output ", QuotedInput(requested.name()),
                       "; this model gives: ", absl::StrJoin(names, ", ")));
    }
    if (std::find(call.outputs.begin(), call.outputs.end(), requested.name()) !=
        call.outputs.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "output ", QuotedInput(requested.name()), " is requested twice"));
    }
    call.outputs.push_back(requested.name());
  }
  if (call.outputs.empty()) {
    if (model.output_size() > 0) {
      call.outputs = {"output"};
    } else {
      call.outputs = {"forward", "backward"};
    }
  }
  bool merged = false, directions = false, states_wanted = false;
  for (const std::string& name : call.outputs) {
    merged |= name == "output";
    directions |= name == "forward" || name == "backward";
    states_wanted |= absl::StartsWith(name, "state/");
  }
  predict.set_outputs(merged && directions ? v1::OUTPUT_SELECTION_BOTH
                      : directions         ? v1::OUTPUT_SELECTION_DIRECTIONS
                                           : v1::OUTPUT_SELECTION_MERGED);
  predict.set_return_states(states_wanted);
  predict.set_model_name(request.model_name());
  predict.set_request_id(request.id());
  // Raw in, raw out (as Triton's clients expect); or when asked for.
  call.raw_outputs = request.raw_input_contents_size() > 0;
  auto raw = request.parameters().find("raw_output");
  if (raw != request.parameters().end() &&
      raw->second.parameter_choice_case() ==
          inference::InferParameter::kBoolParam) {
    call.raw_outputs = raw->second.bool_param();
  }
  return call;
}

absl::Status InferResponseFromPredict(const v1::PredictResponse& predict,
                                      const OpenInferCall& call,
                                      const Model& model,
                                      inference::ModelInferResponse* response) {
  const int64_t batch = predict.sequences_size();
  const int64_t steps = call.time_steps;
  response->set_model_name(predict.model_name());
  response->set_model_version(absl::StrCat(predict.model_version()));
  response->set_id(predict.request_id());
  const std::vector<const BidirectionalLayer*> layers =
      BidirectionalLayers(model);
  for (const std::string& name : call.outputs) {
    auto* out = response->add_outputs();
    out->set_name(name);
    out->set_datatype("FP32");
    std::vector<float> values;
    std::vector<int64_t> shape;
    if (name == "output" || name == "forward" || name == "backward") {
      // Per sequence [length, D] (or [D]), padded to [B, T, D] with zeros.
      auto tensor = [&](int64_t b) -> const v1::Tensor& {
        const v1::SequenceOutput& s = predict.sequences(b);
        return name == "output"    ? s.output()
               : name == "forward" ? s.forward()
                                   : s.backward();
      };
      const v1::Tensor& first = tensor(0);
      const bool sequences = first.shape_size() == 2;
      const int64_t width = first.shape(first.shape_size() - 1);
      shape = sequences ? std::vector<int64_t>{batch, steps, width}
                        : std::vector<int64_t>{batch, width};
      values.assign(sequences ? batch * steps * width : batch * width, 0.0f);
      for (int64_t b = 0; b < batch; ++b) {
        const v1::Tensor& t = tensor(b);
        std::copy(t.values().begin(), t.values().end(),
                  values.begin() + b * (sequences ? steps * width : width));
      }
    } else {
      // state/<layer>/<name>: [B, units].
      const std::string rest = name.substr(6);
      const std::string layer_name = rest.substr(0, rest.rfind('/'));
      const std::string state_name = rest.substr(rest.rfind('/') + 1);
      int layer = -1, index = -1;
      for (size_t l = 0; l < layers.size(); ++l) {
        if (layers[l]->name != layer_name) continue;
        const auto states = States(*layers[l]);
        for (size_t k = 0; k < states.size(); ++k) {
          if (states[k].first == state_name) {
            layer = static_cast<int>(l);
            index = static_cast<int>(k);
          }
        }
      }
      if (layer < 0) {
        return absl::InternalError(absl::StrCat("no state for output ", name));
      }
      int64_t units = 0;
      for (int64_t b = 0; b < batch; ++b) {
        const v1::Tensor& t = predict.sequences(b).states(layer).states(index);
        units = t.values_size();
        values.insert(values.end(), t.values().begin(), t.values().end());
      }
      shape = {batch, units};
    }
    out->mutable_shape()->Assign(shape.begin(), shape.end());
    if (call.raw_outputs) {
      AppendRaw(values, response->add_raw_output_contents());
    } else {
      out->mutable_contents()->mutable_fp32_contents()->Assign(values.begin(),
                                                               values.end());
    }
  }
  return absl::OkStatus();
}

}  // namespace biserve
