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

// How a call names and lays out its sequences: biserve's names (batch
// first) or the model's signature.
struct DataLayout {
  std::string data;         // the sequences: features, token_ids, INPUT
  std::string lengths;      // their lengths
  bool time_major = false;  // data is [T, B, ...] rather than [B, T, ...]
};

DataLayout BiserveLayout(const Model& model) {
  return DataLayout{.data = DataName(model), .lengths = "lengths"};
}

// REQUIRES: model.signature() (checked: it has an INPUT).
DataLayout SignatureLayout(const Model& model) {
  const Signature& signature = *model.signature();
  const SignatureTensor* input = signature.Find(SignatureRole::kInput);
  const SignatureTensor* lengths = signature.Find(SignatureRole::kLengths);
  return DataLayout{.data = input->name,
                    .lengths = lengths != nullptr ? lengths->name : "lengths",
                    .time_major = input->time_major};
}

// "[batch, time, 3]", "[time, batch]", ...: the data input's dimensions.
std::string DataPattern(const Model& model, const DataLayout& layout) {
  std::string pattern = layout.time_major ? "[time, batch" : "[batch, time";
  if (!model.takes_token_ids()) {
    absl::StrAppend(&pattern, ", ", model.input_dim());
  }
  return absl::StrCat(pattern, "]");
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

// The tensors of biserve's names, and the signature's inputs (or outputs);
// defined below, beside the metadata they answer.
std::vector<OpenTensorSpec> BiserveInputs(const Model& model);
std::vector<OpenTensorSpec> BiserveOutputs(const Model& model);
std::vector<OpenTensorSpec> SignatureSpecs(const Model& model, bool inputs);

std::string JoinNames(const std::vector<OpenTensorSpec>& specs) {
  std::vector<absl::string_view> names;
  for (const OpenTensorSpec& s : specs) names.push_back(s.name);
  return absl::StrJoin(names, ", ");
}

// The names a model's inputs may have, for messages: biserve's, and with a
// signature its names first.
std::string AcceptedInputs(const Model& model) {
  if (!model.signature().has_value()) return JoinNames(BiserveInputs(model));
  return absl::StrCat(JoinNames(SignatureSpecs(model, /*inputs=*/true)),
                      " (or biserve's names: ", JoinNames(BiserveInputs(model)),
                      ")");
}

// The error for input `name`, which is none of the model's inputs.
absl::Status UnknownInput(const inference::ModelInferRequest& request,
                          const Model& model, const std::string& name) {
  if (name == "features" || name == "token_ids") {
    // The other kind of input: name the one this model takes.
    return absl::InvalidArgumentError(absl::StrCat(
        InputName(name), ": model ", QuotedInput(request.model_name()),
        " takes ", DataSpec(model), ", not ", name));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown ", InputName(name),
                   "; this model takes: ", AcceptedInputs(model)));
}

// The frame of the request's inputs, whatever their names: INVALID_ARGUMENT
// for a name given twice or contents beside raw_input_contents.
absl::Status CheckInputFrame(const inference::ModelInferRequest& request) {
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
  }
  return absl::OkStatus();
}

// The error for a request without its sequences.
absl::Status MissingData(const inference::ModelInferRequest& request,
                         const Model& model) {
  if (!model.signature().has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input '", DataName(model), "' is missing: model ",
        QuotedInput(request.model_name()), " takes ", DataSpec(model)));
  }
  const DataLayout layout = SignatureLayout(model);
  return absl::InvalidArgumentError(absl::StrCat(
      "input '", layout.data, "' is missing: model ",
      QuotedInput(request.model_name()), " takes ", layout.data, " (",
      model.takes_token_ids() ? "INT64 or INT32 " : "FP32 ",
      DataPattern(model, layout), "), or biserve's ", DataSpec(model)));
}

// Sorts the request's inputs by biserve's names. INVALID_ARGUMENT for an
// input the model does not take, or a missing data input.
absl::StatusOr<InputIndices> ClassifyInputs(
    const inference::ModelInferRequest& request, const Model& model) {
  const std::string data_name = DataName(model);
  InputIndices found;
  for (int i = 0; i < request.inputs_size(); ++i) {
    const std::string& name = request.inputs(i).name();
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
  if (found.data < 0) return MissingData(request, model);
  return found;
}

// B and T of a request, from its data input.
struct BatchShape {
  int64_t batch = 0;
  int64_t steps = 0;
};

// The data input's datatype and shape checked against the model's, in the
// call's layout.
absl::StatusOr<BatchShape> DataShape(const InputTensor& input,
                                     const Model& model,
                                     const DataLayout& layout,
                                     int64_t max_elements) {
  const bool tokens = model.takes_token_ids();
  if (auto s = tokens ? CheckType(input, {"INT32", "INT64"})
                      : CheckType(input, {"FP32"});
      !s.ok()) {
    return s;
  }
  const std::vector<int64_t> dims =
      tokens ? std::vector<int64_t>{-1, -1}
             : std::vector<int64_t>{-1, -1, model.input_dim()};
  if (auto s =
          CheckShape(input, dims, DataPattern(model, layout), max_elements);
      !s.ok()) {
    return s;
  }
  const int batch_axis = layout.time_major ? 1 : 0;
  return BatchShape{.batch = input.shape(batch_axis),
                    .steps = input.shape(1 - batch_axis)};
}

// Where step t of sequence b is in the data input, counted in steps (rows
// of input_dim values, or token ids).
int64_t StepOffset(const DataLayout& layout, const BatchShape& shape, int64_t b,
                   int64_t t) {
  return layout.time_major ? t * shape.batch + b : b * shape.steps + t;
}

// The client's index of step t of sequence b: [b, t], or [t, b].
std::vector<int64_t> StepIndex(const DataLayout& layout, int64_t b, int64_t t) {
  return layout.time_major ? std::vector<int64_t>{t, b}
                           : std::vector<int64_t>{b, t};
}

// Each sequence's length: input `index` (layout.lengths), or T for all
// when index < 0. A length of 0 is refused, as PyTorch's
// pack_padded_sequence refuses it: every sequence has a first step.
absl::StatusOr<std::vector<int64_t>> SequenceLengths(
    const inference::ModelInferRequest& request, int index,
    const BatchShape& shape, const DataLayout& layout, int64_t max_elements) {
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
          absl::StrCat(InputName(layout.lengths), ": ", layout.lengths, "[", b,
                       "] = ", (*values)[b], " is outside [1, ", shape.steps,
                       "] (the time dimension of '", layout.data, "')"));
    }
    length[b] = (*values)[b];
  }
  return length;
}

// One sequence per batch row of the token ids (input `index`, [B, T] or
// [T, B]), each cut to its length; ids outside the vocabulary are refused.
absl::Status AddTokenSequences(const inference::ModelInferRequest& request,
                               int index, const Model& model,
                               const std::vector<int64_t>& length,
                               const BatchShape& shape,
                               const DataLayout& layout,
                               v1::PredictRequest& predict) {
  auto values = Values<int64_t>(request, index, shape.batch * shape.steps);
  if (!values.ok()) return values.status();
  const int64_t vocabulary = model.embedding()->embeddings.rows();
  for (int64_t b = 0; b < shape.batch; ++b) {
    v1::Sequence* s = predict.add_sequences();
    s->set_length(length[b]);
    for (int64_t t = 0; t < length[b]; ++t) {
      const int64_t id = (*values)[StepOffset(layout, shape, b, t)];
      if (id < 0 || id >= vocabulary) {
        return absl::InvalidArgumentError(absl::StrCat(
            InputName(layout.data), ": ", layout.data, "[",
            absl::StrJoin(StepIndex(layout, b, t), "]["), "] = ", id,
            " is outside the vocabulary [0, ", vocabulary, ")"));
      }
      s->add_token_ids(static_cast<int32_t>(id));
    }
  }
  return absl::OkStatus();
}

// One sequence per batch row of the features (input `index`, [B, T,
// input_dim] or [T, B, input_dim]), each cut to its length; non-finite
// values in the real steps are refused unless limits allow them.
absl::Status AddFeatureSequences(const inference::ModelInferRequest& request,
                                 int index, const Model& model,
                                 const std::vector<int64_t>& length,
                                 const BatchShape& shape,
                                 const DataLayout& layout,
                                 const RequestLimits& limits,
                                 v1::PredictRequest& predict) {
  const int64_t width = model.input_dim();
  auto values =
      Values<float>(request, index, shape.batch * shape.steps * width);
  if (!values.ok()) return values.status();
  for (int64_t b = 0; b < shape.batch; ++b) {
    v1::Sequence* s = predict.add_sequences();
    s->set_length(length[b]);
    s->mutable_features()->Reserve(length[b] * width);
    // Only the real steps: padding past lengths[b] is never computed.
    for (int64_t t = 0; t < length[b]; ++t) {
      const float* row =
          values->data() + StepOffset(layout, shape, b, t) * width;
      if (const int64_t v =
              limits.allow_non_finite
                  ? -1
                  : FirstNonFinite(absl::MakeConstSpan(row, width));
          v >= 0) {
        std::vector<int64_t> at = StepIndex(layout, b, t);
        at.push_back(v);
        return NonFiniteError(layout.data, at, row[v], "inputs");
      }
      s->mutable_features()->Add(row, row + width);
    }
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

// The outputs the request names, in order, among `available`, or
// `defaults` when it names none.
absl::StatusOr<std::vector<std::string>> SelectedOutputs(
    const inference::ModelInferRequest& request,
    const std::vector<OpenTensorSpec>& available,
    std::vector<std::string> defaults) {
  std::vector<std::string> outputs;
  for (const auto& requested : request.outputs()) {
    const std::string& name = requested.name();
    if (std::none_of(available.begin(), available.end(),
                     [&](const OpenTensorSpec& s) { return s.name == name; })) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown output ", QuotedInput(name),
                       "; this model gives: ", JoinNames(available)));
    }
    if (std::find(outputs.begin(), outputs.end(), name) != outputs.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("output ", QuotedInput(name), " is requested twice"));
    }
    outputs.push_back(name);
  }
  if (outputs.empty()) return defaults;
  return outputs;
}

// The outputs a biserve-named request asks for; by default the model's
// output, else its two directions.
absl::StatusOr<std::vector<std::string>> BiserveOutputSelection(
    const inference::ModelInferRequest& request, const Model& model) {
  return SelectedOutputs(request, BiserveOutputs(model),
                         model.output_size() > 0
                             ? std::vector<std::string>{"output"}
                             : std::vector<std::string>{"forward", "backward"});
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

std::vector<OpenTensorSpec> BiserveInputs(const Model& model) {
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

std::vector<OpenTensorSpec> BiserveOutputs(const Model& model) {
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

// The units of a signature's state tensors: every direction they cover has
// the same (CheckSignature), the first layer's forward units.
int SignatureStateUnits(const Model& model) {
  return model.bidirectional(model.first_bidirectional()).forward.units;
}

// The Open Inference shape of `tensor`, with -1 for B and T (a time-major
// tensor has T first, which is also -1).
std::vector<int64_t> SignatureShape(const SignatureTensor& tensor,
                                    const Model& model) {
  const int64_t units = SignatureStateUnits(model);
  switch (tensor.role) {
    case SignatureRole::kInput:
      if (model.takes_token_ids()) return {-1, -1};
      return {-1, -1, model.input_dim()};
    case SignatureRole::kLengths:
      return {-1};
    case SignatureRole::kInitialH:
    case SignatureRole::kInitialC:
      return {2, -1, units};
    case SignatureRole::kOutput:
      if (model.returns_sequences()) return {-1, -1, model.output_size()};
      return {-1, model.output_size()};
    case SignatureRole::kFinalH:
    case SignatureRole::kFinalC:
      return {2 * model.bidirectional_count(), -1, units};
    case SignatureRole::kUnspecified:
      break;
  }
  return {};
}

// The signature's inputs (or outputs) as Open Inference tensors, in its
// order. REQUIRES: model.signature().
std::vector<OpenTensorSpec> SignatureSpecs(const Model& model, bool inputs) {
  const Signature& signature = *model.signature();
  std::vector<OpenTensorSpec> specs;
  for (const SignatureTensor& t :
       inputs ? signature.inputs : signature.outputs) {
    specs.push_back({t.name, t.datatype, SignatureShape(t, model)});
  }
  return specs;
}

// The signature's output named `name`, or nullptr.
const SignatureTensor* SignatureOutput(const Model& model,
                                       absl::string_view name) {
  if (!model.signature().has_value()) return nullptr;
  for (const SignatureTensor& t : model.signature()->outputs) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

// Whether the request names its tensors by the model's signature: it sends
// the signature's INPUT.
bool UsesSignature(const inference::ModelInferRequest& request,
                   const Model& model) {
  if (!model.signature().has_value()) return false;
  const std::string& input =
      model.signature()->Find(SignatureRole::kInput)->name;
  return std::any_of(request.inputs().begin(), request.inputs().end(),
                     [&](const InputTensor& t) { return t.name() == input; });
}

// Where each signature input of a request is: indices into
// request.inputs(), -1 when not given.
struct SignatureIndices {
  int data = -1;  // INPUT, always found
  int lengths = -1;
  int initial_h = -1;
  int initial_c = -1;
};

// Sorts the request's inputs by signature role: INVALID_ARGUMENT for an
// input the signature does not have.
absl::StatusOr<SignatureIndices> ClassifySignatureInputs(
    const inference::ModelInferRequest& request, const Model& model) {
  SignatureIndices found;
  for (int i = 0; i < request.inputs_size(); ++i) {
    const std::string& name = request.inputs(i).name();
    const auto& inputs = model.signature()->inputs;
    auto it =
        std::find_if(inputs.begin(), inputs.end(),
                     [&](const SignatureTensor& t) { return t.name == name; });
    if (it == inputs.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown ", InputName(name), "; this model takes: ",
                       JoinNames(SignatureSpecs(model, /*inputs=*/true)),
                       " (biserve's own names are not mixed with these)"));
    }
    switch (it->role) {
      case SignatureRole::kInput:
        found.data = i;
        break;
      case SignatureRole::kLengths:
        found.lengths = i;
        break;
      case SignatureRole::kInitialH:
        found.initial_h = i;
        break;
      default:  // a checked signature's inputs have input roles
        found.initial_c = i;
        break;
    }
  }
  return found;
}

// A signature state input ([2, B, units], input `index`), checked; its
// values in the client's order.
absl::StatusOr<std::vector<float>> SignatureStateInput(
    const inference::ModelInferRequest& request, int index, int64_t batch,
    int64_t units, const RequestLimits& limits, int64_t max_elements) {
  const InputTensor& t = request.inputs(index);
  if (auto s = CheckType(t, {"FP32"}); !s.ok()) return s;
  if (auto s = CheckShape(t, {2, batch, units},
                          absl::StrCat("[2, ", batch, ", ", units,
                                       "] (directions, batch, units)"),
                          max_elements);
      !s.ok()) {
    return s;
  }
  auto values = Values<float>(request, index, 2 * batch * units);
  if (!values.ok()) return values.status();
  if (const int64_t v = limits.allow_non_finite ? -1 : FirstNonFinite(*values);
      v >= 0) {
    return NonFiniteError(t.name(),
                          {v / (batch * units), v / units % batch, v % units},
                          (*values)[v], "initial states");
  }
  return values;
}

// INITIAL_H and INITIAL_C (input indices, -1 when not sent) as every
// sequence's initial_state, in Keras' order (the first layer's `states`);
// a state not sent is zeros. Direction d of sequence b is row [d, b].
absl::Status AddSignatureStates(const inference::ModelInferRequest& request,
                                const SignatureIndices& inputs,
                                const Model& model, const RequestLimits& limits,
                                int64_t max_elements,
                                v1::PredictRequest& predict) {
  if (inputs.initial_h < 0 && inputs.initial_c < 0) return absl::OkStatus();
  const int64_t batch = predict.sequences_size();
  const int64_t units = SignatureStateUnits(model);
  // [2, B, units] each; empty: not sent, zeros.
  std::vector<float> h, c;
  for (const auto& [index, values] :
       {std::pair{inputs.initial_h, &h}, std::pair{inputs.initial_c, &c}}) {
    if (index < 0) continue;
    auto read =
        SignatureStateInput(request, index, batch, units, limits, max_elements);
    if (!read.ok()) return read.status();
    *values = *std::move(read);
  }
  const std::vector<float> zeros(units, 0.0f);
  const BidirectionalLayer& first =
      model.bidirectional(model.first_bidirectional());
  for (int64_t b = 0; b < batch; ++b) {
    for (const StateSpec& state : first.states) {
      const std::vector<float>& values = state.kind == StateKind::kH ? h : c;
      const int64_t d = state.direction == Direction::kForward ? 0 : 1;
      const float* begin = values.empty()
                               ? zeros.data()
                               : values.data() + (d * batch + b) * units;
      v1::Tensor* t = predict.mutable_sequences(b)->add_initial_state();
      t->add_shape(units);
      t->mutable_values()->Assign(begin, begin + units);
    }
  }
  return absl::OkStatus();
}

// The sequences of a request, from its data input (index `data`) and its
// lengths (index `lengths`, -1: every sequence has T steps), in `layout`.
absl::Status AddSequences(const inference::ModelInferRequest& request, int data,
                          int lengths, const Model& model,
                          const DataLayout& layout, const RequestLimits& limits,
                          int64_t max_elements, OpenInferCall& call) {
  absl::StatusOr<BatchShape> shape =
      DataShape(request.inputs(data), model, layout, max_elements);
  if (!shape.ok()) return shape.status();
  absl::StatusOr<std::vector<int64_t>> length =
      SequenceLengths(request, lengths, *shape, layout, max_elements);
  if (!length.ok()) return length.status();
  call.time_steps = shape->steps;
  return model.takes_token_ids()
             ? AddTokenSequences(request, data, model, *length, *shape, layout,
                                 call.request)
             : AddFeatureSequences(request, data, model, *length, *shape,
                                   layout, limits, call.request);
}

// A request named by biserve: features or token_ids, lengths,
// initial_state/..., outputs output, forward, backward, state/...
absl::Status BiserveRequest(const inference::ModelInferRequest& request,
                            const Model& model, const RequestLimits& limits,
                            int64_t max_elements, OpenInferCall& call) {
  absl::StatusOr<InputIndices> inputs = ClassifyInputs(request, model);
  if (!inputs.ok()) return inputs.status();
  if (absl::Status s =
          AddSequences(request, inputs->data, inputs->lengths, model,
                       BiserveLayout(model), limits, max_elements, call);
      !s.ok()) {
    return s;
  }
  if (!inputs->states.empty()) {
    absl::Status s = AddInitialStates(request, inputs->states, model, limits,
                                      max_elements, call.request);
    if (!s.ok()) return s;
  }
  absl::StatusOr<std::vector<std::string>> outputs =
      BiserveOutputSelection(request, model);
  if (!outputs.ok()) return outputs.status();
  call.outputs = *std::move(outputs);
  SetOutputSelection(call.outputs, call.request);
  return absl::OkStatus();
}

// A request named by the model's signature (see UsesSignature).
absl::Status SignatureRequest(const inference::ModelInferRequest& request,
                              const Model& model, const RequestLimits& limits,
                              int64_t max_elements, OpenInferCall& call) {
  absl::StatusOr<SignatureIndices> inputs =
      ClassifySignatureInputs(request, model);
  if (!inputs.ok()) return inputs.status();
  if (absl::Status s =
          AddSequences(request, inputs->data, inputs->lengths, model,
                       SignatureLayout(model), limits, max_elements, call);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = AddSignatureStates(request, *inputs, model, limits,
                                          max_elements, call.request);
      !s.ok()) {
    return s;
  }
  const std::vector<OpenTensorSpec> available =
      SignatureSpecs(model, /*inputs=*/false);
  std::vector<std::string> all;
  for (const OpenTensorSpec& spec : available) all.push_back(spec.name);
  absl::StatusOr<std::vector<std::string>> outputs =
      SelectedOutputs(request, available, all);
  if (!outputs.ok()) return outputs.status();
  call.outputs = *std::move(outputs);
  call.signature = true;
  // OUTPUT is the merged output; FINAL_H and FINAL_C need the states.
  call.request.set_outputs(v1::OUTPUT_SELECTION_MERGED);
  call.request.set_return_states(std::any_of(
      call.outputs.begin(), call.outputs.end(), [&](const std::string& name) {
        return SignatureOutput(model, name)->role != SignatureRole::kOutput;
      }));
  return absl::OkStatus();
}

// The signature's OUTPUT of every sequence, [B, T, D] ([T, B, D] time
// major) or [B, D]; steps past a sequence's length hold the model's
// padding_step_output, as ONNX Runtime gives them.
absl::StatusOr<OutputValues> SignatureModelOutput(
    const v1::PredictResponse& predict, const std::vector<int64_t>& shape,
    bool time_major, const Model& model) {
  const int64_t batch = predict.sequences_size();
  const int64_t width = model.output_size();
  const bool sequences = model.returns_sequences();
  const int64_t steps = sequences ? (time_major ? shape[0] : shape[1]) : 1;
  OutputValues output{.shape = shape};
  output.values.resize(batch * steps * width);
  const float* padding = model.padding_step_output().data();
  for (int64_t b = 0; b < batch; ++b) {
    const v1::Tensor& t = predict.sequences(b).output();
    const int64_t length = sequences && t.shape_size() == 2 ? t.shape(0) : 1;
    if (t.values_size() != length * width || length > steps) {
      return absl::InternalError(
          absl::StrCat("sequence ", b, " has ", t.values_size(),
                       " output values for ", length, " steps of ", width));
    }
    for (int64_t step = 0; step < steps; ++step) {
      const float* from =
          step < length ? t.values().data() + step * width : padding;
      const int64_t row = time_major ? step * batch + b : b * steps + step;
      std::copy(from, from + width, output.values.begin() + row * width);
    }
  }
  return output;
}

// The final states of `kind` of every layer and sequence, [2 * layers, B,
// units]: row [2 * l + d, b] is layer l's direction d of sequence b.
absl::StatusOr<OutputValues> SignatureFinalStates(
    const v1::PredictResponse& predict, const std::vector<int64_t>& shape,
    StateKind kind, const Model& model) {
  const std::vector<const BidirectionalLayer*> layers =
      BidirectionalLayers(model);
  const int64_t batch = predict.sequences_size();
  const int64_t units = SignatureStateUnits(model);
  OutputValues output{.shape = shape};
  output.values.resize(2 * layers.size() * batch * units);
  for (int64_t l = 0; l < static_cast<int64_t>(layers.size()); ++l) {
    for (const Direction d : {Direction::kForward, Direction::kBackward}) {
      const int index = layers[l]->state_index(d, kind);
      const int64_t row = 2 * l + (d == Direction::kForward ? 0 : 1);
      for (int64_t b = 0; b < batch; ++b) {
        const v1::SequenceOutput& s = predict.sequences(b);
        if (index < 0 || s.states_size() <= l ||
            s.states(l).states_size() <= index ||
            s.states(l).states(index).values_size() != units) {
          return absl::InternalError(
              absl::StrCat("sequence ", b, " lacks final state ",
                           StateKindName(kind), " of layer ", layers[l]->name));
        }
        const auto& values = s.states(l).states(index).values();
        std::copy(values.begin(), values.end(),
                  output.values.begin() + (row * batch + b) * units);
      }
    }
  }
  return output;
}

// Signature output `name` of the reply.
absl::StatusOr<OutputValues> SignatureOutputValues(
    const v1::PredictResponse& predict, const OpenInferCall& call,
    const Model& model, const std::string& name) {
  const SignatureTensor* tensor = SignatureOutput(model, name);
  if (tensor == nullptr) {
    return absl::InternalError(absl::StrCat("no signature output ", name));
  }
  const std::vector<int64_t> shape = InferOutputShape(call, model, name);
  switch (tensor->role) {
    case SignatureRole::kOutput:
      return SignatureModelOutput(predict, shape, tensor->time_major, model);
    case SignatureRole::kFinalH:
      return SignatureFinalStates(predict, shape, StateKind::kH, model);
    default:
      return SignatureFinalStates(predict, shape, StateKind::kC, model);
  }
}

// Biserve-named output `name` of the reply.
absl::StatusOr<OutputValues> BiserveOutputValues(
    const v1::PredictResponse& predict, const OpenInferCall& call,
    const Model& model, const std::string& name) {
  if (name == "output" || name == "forward" || name == "backward") {
    return SequenceOutputValues(predict, name, call.time_steps);
  }
  return StateOutputValues(predict, name, model);
}

}  // namespace

std::vector<OpenTensorSpec> OpenInferenceInputs(const Model& model) {
  if (model.signature().has_value()) {
    return SignatureSpecs(model, /*inputs=*/true);
  }
  return BiserveInputs(model);
}

std::vector<OpenTensorSpec> OpenInferenceOutputs(const Model& model) {
  if (model.signature().has_value()) {
    return SignatureSpecs(model, /*inputs=*/false);
  }
  return BiserveOutputs(model);
}

std::vector<int64_t> InferOutputShape(const OpenInferCall& call,
                                      const Model& model,
                                      absl::string_view name) {
  const int64_t batch = call.request.sequences_size();
  const int64_t steps = call.time_steps;
  if (call.signature) {
    const SignatureTensor* tensor = SignatureOutput(model, name);
    if (tensor == nullptr) return {};
    std::vector<int64_t> shape = SignatureShape(*tensor, model);
    if (tensor->role != SignatureRole::kOutput)
      return {shape[0], batch, shape[2]};
    if (shape.size() == 2) return {batch, shape[1]};
    if (tensor->time_major) return {steps, batch, shape[2]};
    return {batch, steps, shape[2]};
  }
  for (const OpenTensorSpec& spec : BiserveOutputs(model)) {
    if (spec.name != name) continue;
    const int64_t width = spec.shape.back();
    return spec.shape.size() == 3 ? std::vector<int64_t>{batch, steps, width}
                                  : std::vector<int64_t>{batch, width};
  }
  return {};
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
  if (absl::Status s = CheckInputFrame(request); !s.ok()) return s;
  // Every value takes at least a byte of the request: no shape may claim
  // more elements than it has bytes (see CheckShape).
  const int64_t max_elements = static_cast<int64_t>(request.ByteSizeLong());
  OpenInferCall call;
  absl::Status parsed =
      UsesSignature(request, model)
          ? SignatureRequest(request, model, limits, max_elements, call)
          : BiserveRequest(request, model, limits, max_elements, call);
  if (!parsed.ok()) return parsed;
  call.request.set_model_name(request.model_name());
  call.request.set_request_id(request.id());
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
    absl::StatusOr<OutputValues> output =
        call.signature ? SignatureOutputValues(predict, call, model, name)
                       : BiserveOutputValues(predict, call, model, name);
    if (!output.ok()) return output.status();
    out->mutable_shape()->Assign(output->shape.begin(), output->shape.end());
    if (call.raw_outputs) {
      AppendRaw(output->values, response->add_raw_output_contents());
    } else {
      out->mutable_contents()->mutable_fp32_contents()->Assign(
          output->values.begin(), output->values.end());
    }
  }
  return absl::OkStatus();
}

}  // namespace biserve
