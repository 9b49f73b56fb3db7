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

// The input that carries the sequences: "token_ids" for an Embedding model,
// else "features".
std::string DataName(const Model& model) {
  return model.takes_token_ids() ? "token_ids" : "features";
}

// What the model takes, for messages: the input's name, datatype and shape.
std::string DataSpec(const Model& model) {
  return model.takes_token_ids()
             ? "token_ids (INT32 or INT64 [batch, time], an Embedding input)"
             : absl::StrCat("features (FP32 [batch, time, ", model.input_dim(),
                            "])");
}

// The Open Inference name of `state` of `layer`'s states.
std::string InitialStateName(const BidirectionalLayer& layer,
                             absl::string_view state) {
  return absl::StrCat("initial_state/", layer.name, "/", state);
}

// The Open Inference name of `state`'s final value in `layer`.
std::string StateOutputName(const BidirectionalLayer& layer,
                            absl::string_view state) {
  return absl::StrCat("state/", layer.name, "/", state);
}

// How initial states are named, for the message about an unknown one.
std::string InitialStatePattern(const BidirectionalLayer& layer) {
  std::vector<absl::string_view> names;
  for (const StateSpec& state : layer.states) names.push_back(state.name);
  return InitialStateName(layer,
                          absl::StrCat("<", absl::StrJoin(names, "|"), ">"));
}

// raw_input_contents holds one entry per input, or none.
absl::Status CheckRawContentsCount(
    const inference::ModelInferRequest& request) {
  if (request.raw_input_contents_size() == 0 ||
      request.raw_input_contents_size() == request.inputs_size()) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("raw_input_contents has ", request.raw_input_contents_size(),
                   " entries for ", request.inputs_size(),
                   " inputs; give one per input, or none"));
}

// Where each input of a request is: indices into request.inputs().
struct InputIndices {
  int data = -1;                      // features or token_ids, always found
  int lengths = -1;                   // -1: not given
  std::map<std::string, int> states;  // initial_state/..., by name
};

// The error for input `name`, which is none of the model's inputs.
absl::Status UnknownInput(const inference::ModelInferRequest& request,
                          const Model& model, const std::string& name) {
  if (name == "features" || name == "token_ids") {
    // The other kind of input: name the one this model takes.
    return absl::InvalidArgumentError(absl::StrCat(
        InputName(name), ": model ", QuotedInput(request.model_name()),
        " takes ", DataSpec(model), ", not ", name));
  }
  std::vector<std::string> names;
  for (const OpenTensorSpec& s : OpenInferenceInputs(model)) {
    names.push_back(s.name);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown ", InputName(name),
                   "; this model takes: ", absl::StrJoin(names, ", ")));
}

// Sorts the request's inputs by role. INVALID_ARGUMENT for a name given
// twice, contents beside raw_input_contents, an input the model does not
// take, or a missing data input.
absl::StatusOr<InputIndices> ClassifyInputs(
    const inference::ModelInferRequest& request, const Model& model) {
  const std::string data_name = DataName(model);
  InputIndices found;
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
      found.data = i;
    } else if (name == "lengths") {
      found.lengths = i;
    } else if (absl::StartsWith(name, "initial_state/")) {
      found.states[name] = i;
    } else {
      return UnknownInput(request, model, name);
    }
  }
  if (found.data < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input '", data_name, "' is missing: model ",
        QuotedInput(request.model_name()), " takes ", DataSpec(model)));
  }
  return found;
}

// B and T of a request, from its data input.
struct BatchShape {
  int64_t batch = 0;
  int64_t steps = 0;
};

// The data input's datatype and shape checked against the model's.
absl::StatusOr<BatchShape> DataShape(const InputTensor& input,
                                     const Model& model, int64_t max_elements) {
  if (model.takes_token_ids()) {
    if (auto s = CheckType(input, {"INT32", "INT64"}); !s.ok()) return s;
    if (auto s = CheckShape(input, {-1, -1}, "[batch, time]", max_elements);
        !s.ok()) {
      return s;
    }
  } else {
    if (auto s = CheckType(input, {"FP32"}); !s.ok()) return s;
    if (auto s =
            CheckShape(input, {-1, -1, model.input_dim()},
                       absl::StrCat("[batch, time, ", model.input_dim(), "]"),
                       max_elements);
        !s.ok()) {
      return s;
    }
  }
  return BatchShape{.batch = input.shape(0), .steps = input.shape(1)};
}

// Each sequence's length: input `index` ("lengths"), or T for all when
// index < 0.
absl::StatusOr<std::vector<int64_t>> SequenceLengths(
    const inference::ModelInferRequest& request, int index,
    const BatchShape& shape, const std::string& data_name,
    int64_t max_elements) {
  std::vector<int64_t> length(shape.batch, shape.steps);
  if (index < 0) return length;
  const InputTensor& input = request.inputs(index);
  if (auto s = CheckType(input, {"INT32", "INT64"}); !s.ok()) return s;
  if (auto s =
          CheckShape(input, {shape.batch},
                     absl::StrCat("[", shape.batch, "] (batch)"), max_elements);
      !s.ok()) {
    return s;
  }
  auto values = Values<int64_t>(request, index, shape.batch);
  if (!values.ok()) return values.status();
  for (int64_t b = 0; b < shape.batch; ++b) {
    if ((*values)[b] < 1 || (*values)[b] > shape.steps) {
      return absl::InvalidArgumentError(
          absl::StrCat("input 'lengths': lengths[", b, "] = ", (*values)[b],
                       " is outside [1, ", shape.steps,
                       "] (the time dimension of '", data_name, "')"));
    }
    length[b] = (*values)[b];
  }
  return length;
}

// One sequence per row of token_ids (input `index`, [B, T]), each cut to
// its length; ids outside the vocabulary are refused.
absl::Status AddTokenSequences(const inference::ModelInferRequest& request,
                               int index, const Model& model,
                               const std::vector<int64_t>& length,
                               int64_t steps, v1::PredictRequest& predict) {
  const int64_t batch = static_cast<int64_t>(length.size());
  auto values = Values<int64_t>(request, index, batch * steps);
  if (!values.ok()) return values.status();
  const int64_t vocabulary = model.embedding()->embeddings.rows();
  for (int64_t b = 0; b < batch; ++b) {
    v1::Sequence* s = predict.add_sequences();
    s->set_length(length[b]);
    for (int64_t t = 0; t < length[b]; ++t) {
      const int64_t id = (*values)[b * steps + t];
      if (id < 0 || id >= vocabulary) {
        return absl::InvalidArgumentError(absl::StrCat(
            "input 'token_ids': token_ids[", b, "][", t, "] = ", id,
            " is outside the vocabulary [0, ", vocabulary, ")"));
      }
      s->add_token_ids(static_cast<int32_t>(id));
    }
  }
  return absl::OkStatus();
}

// One sequence per row of features (input `index`, [B, T, input_dim]),
// each cut to its length; non-finite values in the real steps are refused
// unless limits allow them.
absl::Status AddFeatureSequences(const inference::ModelInferRequest& request,
                                 int index, const Model& model,
                                 const std::vector<int64_t>& length,
                                 int64_t steps, const RequestLimits& limits,
                                 v1::PredictRequest& predict) {
  const int64_t batch = static_cast<int64_t>(length.size());
  const int64_t width = model.input_dim();
  auto values = Values<float>(request, index, batch * steps * width);
  if (!values.ok()) return values.status();
  for (int64_t b = 0; b < batch; ++b) {
    v1::Sequence* s = predict.add_sequences();
    s->set_length(length[b]);
    const float* begin = values->data() + b * steps * width;
    // Only the real steps: padding past lengths[b] is never computed.
    if (const int64_t v =
            limits.allow_non_finite
                ? -1
                : FirstNonFinite(absl::MakeConstSpan(begin, length[b] * width));
        v >= 0) {
      return NonFiniteError("features", {b, v / width, v % width}, begin[v],
                            "inputs");
    }
    s->mutable_features()->Assign(begin, begin + length[b] * width);
  }
  return absl::OkStatus();
}

// Initial state `name` ([B, units], input `index`) split into one Tensor
// [units] per sequence of `predict` (B of them, added before).
absl::Status AddInitialState(const inference::ModelInferRequest& request,
                             int index, const std::string& name, int units,
                             const RequestLimits& limits, int64_t max_elements,
                             v1::PredictRequest& predict) {
  const int64_t batch = predict.sequences_size();
  const InputTensor& t = request.inputs(index);
  if (auto s = CheckType(t, {"FP32"}); !s.ok()) return s;
  if (auto s =
          CheckShape(t, {batch, units},
                     absl::StrCat("[", batch, ", ", units, "]"), max_elements);
      !s.ok()) {
    return s;
  }
  auto values = Values<float>(request, index, batch * units);
  if (!values.ok()) return values.status();
  if (const int64_t v = limits.allow_non_finite ? -1 : FirstNonFinite(*values);
      v >= 0) {
    return NonFiniteError(name, {v / units, v % units}, (*values)[v],
                          "initial states");
  }
  for (int64_t b = 0; b < batch; ++b) {
    v1::Tensor* state = predict.mutable_sequences(b)->add_initial_state();
    state->add_shape(units);
    state->mutable_values()->Assign(values->begin() + b * units,
                                    values->begin() + (b + 1) * units);
  }
  return absl::OkStatus();
}

// Every initial state of the model's first Bidirectional layer, in Keras'
// order, from `given` (name -> input index): all of them or none.
absl::Status AddInitialStates(const inference::ModelInferRequest& request,
                              std::map<std::string, int> given,
                              const Model& model, const RequestLimits& limits,
                              int64_t max_elements,
                              v1::PredictRequest& predict) {
  const BidirectionalLayer& first =
      model.bidirectional(model.first_bidirectional());
  std::vector<std::string> names;
  for (const StateSpec& state : first.states) {
    names.push_back(InitialStateName(first, state.name));
  }
  for (const StateSpec& state : first.states) {
    const std::string name = InitialStateName(first, state.name);
    auto it = given.find(name);
    if (it == given.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          InputName(name), " is missing: give all initial states (",
          absl::StrJoin(names, ", "), ") or none"));
    }
    absl::Status s = AddInitialState(request, it->second, name, state.units,
                                     limits, max_elements, predict);
    if (!s.ok()) return s;
    given.erase(it);
  }
  if (!given.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown ", InputName(given.begin()->first),
        "; initial states are named ", InitialStatePattern(first)));
  }
  return absl::OkStatus();
}

// The outputs the request names, in order, or the model's default (its
// output, else its two directions).
absl::StatusOr<std::vector<std::string>> SelectedOutputs(
    const inference::ModelInferRequest& request, const Model& model) {
  const std::vector<OpenTensorSpec> available = OpenInferenceOutputs(model);
  std::vector<std::string> outputs;
  for (const auto& requested : request.outputs()) {
    const std::string& name = requested.name();
    if (std::none_of(available.begin(), available.end(),
                     [&](const OpenTensorSpec& s) { return s.name == name; })) {
      std::vector<std::string> names;
      for (const OpenTensorSpec& s : available) names.push_back(s.name);
      return absl::InvalidArgumentError(
          absl::StrCat("unknown output ", QuotedInput(name),
                       "; this model gives: ", absl::StrJoin(names, ", ")));
    }
    if (std::find(outputs.begin(), outputs.end(), name) != outputs.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("output ", QuotedInput(name), " is requested twice"));
    }
    outputs.push_back(name);
  }
  if (outputs.empty() && model.output_size() > 0) {
    outputs = {"output"};
  } else if (outputs.empty()) {
    outputs = {"forward", "backward"};
  }
  return outputs;
}

// What `outputs` need computed: merged output, directions, states.
void SetOutputSelection(const std::vector<std::string>& outputs,
                        v1::PredictRequest& predict) {
  bool merged = false, directions = false, states = false;
  for (const std::string& name : outputs) {
    merged |= name == "output";
    directions |= name == "forward" || name == "backward";
    states |= absl::StartsWith(name, "state/");
  }
  predict.set_outputs(merged && directions ? v1::OUTPUT_SELECTION_BOTH
                      : directions         ? v1::OUTPUT_SELECTION_DIRECTIONS
                                           : v1::OUTPUT_SELECTION_MERGED);
  predict.set_return_states(states);
}

// Raw in, raw out (as Triton's clients expect); or as the bool parameter
// "raw_output" says.
bool WantsRawOutputs(const inference::ModelInferRequest& request) {
  auto raw = request.parameters().find("raw_output");
  if (raw != request.parameters().end() &&
      raw->second.parameter_choice_case() ==
          inference::InferParameter::kBoolParam) {
    return raw->second.bool_param();
  }
  return request.raw_input_contents_size() > 0;
}

// One output tensor of a reply, row-major.
struct OutputValues {
  std::vector<int64_t> shape;
  std::vector<float> values;
};

// Output `name` (output, forward or backward) of every sequence: per
// sequence [length, D] (or [D]), padded to [B, T, D] (or [B, D]) with zeros.
OutputValues SequenceOutputValues(const v1::PredictResponse& predict,
                                  const std::string& name, int64_t steps) {
  const int64_t batch = predict.sequences_size();
  auto tensor = [&](int64_t b) -> const v1::Tensor& {
    const v1::SequenceOutput& s = predict.sequences(b);
    return name == "output"    ? s.output()
           : name == "forward" ? s.forward()
                               : s.backward();
  };
  const v1::Tensor& first = tensor(0);
  const bool sequences = first.shape_size() == 2;
  const int64_t width = first.shape(first.shape_size() - 1);
  OutputValues output;
  output.shape = sequences ? std::vector<int64_t>{batch, steps, width}
                           : std::vector<int64_t>{batch, width};
  output.values.assign(sequences ? batch * steps * width : batch * width, 0.0f);
  for (int64_t b = 0; b < batch; ++b) {
    const v1::Tensor& t = tensor(b);
    std::copy(t.values().begin(), t.values().end(),
              output.values.begin() + b * (sequences ? steps * width : width));
  }
  return output;
}

// Where state output `name` is in a reply: the layer's index among the
// Bidirectional layers and the state's in its LayerStates. INTERNAL if the
// model has no such state (outputs were checked against the model's before
// the call).
absl::StatusOr<std::pair<int, int>> FindStateOutput(const Model& model,
                                                    const std::string& name) {
  const std::vector<const BidirectionalLayer*> layers =
      BidirectionalLayers(model);
  for (int l = static_cast<int>(layers.size()) - 1; l >= 0; --l) {
    const std::vector<StateSpec>& states = layers[l]->states;
    for (int k = static_cast<int>(states.size()) - 1; k >= 0; --k) {
      if (StateOutputName(*layers[l], states[k].name) == name) {
        return std::pair{l, k};
      }
    }
  }
  return absl::InternalError(absl::StrCat("no state for output ", name));
}

// State output `name` of every sequence, [B, units].
absl::StatusOr<OutputValues> StateOutputValues(
    const v1::PredictResponse& predict, const std::string& name,
    const Model& model) {
  absl::StatusOr<std::pair<int, int>> at = FindStateOutput(model, name);
  if (!at.ok()) return at.status();
  const auto [layer, index] = *at;
  OutputValues output;
  int64_t units = 0;
  for (int64_t b = 0; b < predict.sequences_size(); ++b) {
    const v1::Tensor& t = predict.sequences(b).states(layer).states(index);
    units = t.values_size();
    output.values.insert(output.values.end(), t.values().begin(),
                         t.values().end());
  }
  output.shape = {predict.sequences_size(), units};
  return output;
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
  for (const StateSpec& state : first.states) {
    specs.push_back(
        {InitialStateName(first, state.name), "FP32", {-1, state.units}});
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
  for (Direction which : {Direction::kForward, Direction::kBackward}) {
    specs.push_back(
        {std::string(DirectionName(which)), "FP32",
         shape(last.return_sequences, last.direction(which).units)});
  }
  for (const BidirectionalLayer* layer : BidirectionalLayers(model)) {
    for (const StateSpec& state : layer->states) {
      specs.push_back(
          {StateOutputName(*layer, state.name), "FP32", {-1, state.units}});
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
  if (absl::Status s = CheckRawContentsCount(request); !s.ok()) return s;
  absl::StatusOr<InputIndices> inputs = ClassifyInputs(request, model);
  if (!inputs.ok()) return inputs.status();
  // Every value takes at least a byte of the request: no shape may claim
  // more elements than it has bytes (see CheckShape).
  const int64_t max_elements = static_cast<int64_t>(request.ByteSizeLong());
  const InputTensor& data = request.inputs(inputs->data);
  absl::StatusOr<BatchShape> shape = DataShape(data, model, max_elements);
  if (!shape.ok()) return shape.status();
  absl::StatusOr<std::vector<int64_t>> lengths = SequenceLengths(
      request, inputs->lengths, *shape, DataName(model), max_elements);
  if (!lengths.ok()) return lengths.status();

  OpenInferCall call;
  call.time_steps = shape->steps;
  v1::PredictRequest& predict = call.request;
  absl::Status added =
      model.takes_token_ids()
          ? AddTokenSequences(request, inputs->data, model, *lengths,
                              shape->steps, predict)
          : AddFeatureSequences(request, inputs->data, model, *lengths,
                                shape->steps, limits, predict);
  if (!added.ok()) return added;
  if (!inputs->states.empty()) {
    absl::Status s = AddInitialStates(request, inputs->states, model, limits,
                                      max_elements, predict);
    if (!s.ok()) return s;
  }
  absl::StatusOr<std::vector<std::string>> outputs =
      SelectedOutputs(request, model);
  if (!outputs.ok()) return outputs.status();
  call.outputs = *std::move(outputs);
  SetOutputSelection(call.outputs, predict);
  predict.set_model_name(request.model_name());
  predict.set_request_id(request.id());
  call.raw_outputs = WantsRawOutputs(request);
  return call;
}

absl::Status InferResponseFromPredict(const v1::PredictResponse& predict,
                                      const OpenInferCall& call,
                                      const Model& model,
                                      inference::ModelInferResponse* response) {
  response->set_model_name(predict.model_name());
  response->set_model_version(absl::StrCat(predict.model_version()));
  response->set_id(predict.request_id());
  for (const std::string& name : call.outputs) {
    auto* out = response->add_outputs();
    out->set_name(name);
    out->set_datatype("FP32");
    OutputValues output;
    if (name == "output" || name == "forward" || name == "backward") {
      output = SequenceOutputValues(predict, name, call.time_steps);
    } else {
      absl::StatusOr<OutputValues> state =
          StateOutputValues(predict, name, model);
      if (!state.ok()) return state.status();
      output = *std::move(state);
    }
    out->mutable_shape()->Assign(output.shape.begin(), output.shape.end());
    if (call.raw_outputs) {
      AppendRaw(output.values, response->add_raw_output_contents());
    } else {
      out->mutable_contents()->mutable_fp32_contents()->Assign(
          output.values.begin(), output.values.end());
    }
  }
  return absl::OkStatus();
}

}  // namespace biserve
