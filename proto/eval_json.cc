#include "proto/eval_json.h"

#include <charconv>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace biserve {
namespace {

using google::protobuf::ListValue;
using google::protobuf::Value;

absl::Status Invalid(absl::string_view path, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

absl::StatusOr<const ListValue*> AsList(const Value& value,
                                        absl::string_view path,
                                        absl::string_view expected) {
  if (value.kind_case() != Value::kListValue) {
    return Invalid(path, absl::StrCat("expected ", expected));
  }
  return &value.list_value();
}

// Appends a list of numbers at `path` to `out`; exactly `count` unless -1.
absl::Status AppendNumbers(const Value& value, absl::string_view path,
                           int64_t count, std::vector<float>& out) {
  absl::StatusOr<const ListValue*> list =
      AsList(value, path, "a list of numbers");
  if (!list.ok()) return list.status();
  if (count >= 0 && (*list)->values_size() != count) {
    return Invalid(path, absl::StrCat("expected ", count, " numbers, got ",
                                      (*list)->values_size()));
  }
  for (int i = 0; i < (*list)->values_size(); ++i) {
    const Value& v = (*list)->values(i);
    if (v.kind_case() != Value::kNumberValue) {
      return Invalid(absl::StrCat(path, "[", i, "]"), "expected a number");
    }
    out.push_back(static_cast<float>(v.number_value()));
  }
  return absl::OkStatus();
}

// The shortest decimal that reads back as the same float.
void AppendNumber(std::string& out, float v) {
  if (std::isfinite(v)) {
    char buffer[32];
    const auto result = std::to_chars(buffer, buffer + sizeof(buffer), v);
    out.append(buffer, result.ptr);
  } else {
    out += "null";  // JSON has no Inf or NaN
  }
}

// Writes a tensor as nested lists: [D] as [..], [T, D] as [[..], ..].
void AppendTensor(std::string& out, const Tensor& tensor) {
  const int64_t width = tensor.shape.empty() ? 0 : tensor.shape.back();
  const int64_t rows = tensor.shape.size() == 2 ? tensor.shape[0] : 1;
  if (tensor.shape.size() == 2) out += "[";
  for (int64_t r = 0; r < rows; ++r) {
    if (r > 0) out += ", ";
    out += "[";
    for (int64_t j = 0; j < width; ++j) {
      if (j > 0) out += ", ";
      AppendNumber(out, tensor.values[r * width + j]);
    }
    out += "]";
  }
  if (tensor.shape.size() == 2) out += "]";
}

// The values of the input's two keys; initial_state is null when absent.
struct TopLevel {
  const Value* sequences = nullptr;
  const Value* initial_state = nullptr;
};

// Parses `json` into `root` (which the result points into): an object with
// "sequences" and optionally "initial_state", and no other key.
absl::StatusOr<TopLevel> ParseTopLevel(absl::string_view json, Value& root) {
  auto parsed =
      google::protobuf::util::JsonStringToMessage(std::string(json), &root);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input is not valid JSON: ", std::string(parsed.message())));
  }
  if (root.kind_case() != Value::kStructValue) {
    return absl::InvalidArgumentError(
        "input must be a JSON object with a \"sequences\" list");
  }
  // One pass over the keys (rather than Map::find, whose inline code
  // crashes under ThreadSanitizer against Debian's uninstrumented
  // libprotobuf).
  TopLevel top;
  for (const auto& [key, value] : root.struct_value().fields()) {
    if (key == "sequences") {
      top.sequences = &value;
    } else if (key == "initial_state") {
      top.initial_state = &value;
    } else {
      return Invalid(key,
                     "unknown key; expected \"sequences\" and optionally "
                     "\"initial_state\"");
    }
  }
  if (top.sequences == nullptr) {
    return absl::InvalidArgumentError(
        "input has no \"sequences\" list (a list of sequences, each a list "
        "of time steps)");
  }
  return top;
}

// A sequence of token ids at `path`: a list of 32-bit integers.
absl::Status ParseTokenIds(const Value& value, const std::string& path,
                           OwnedSequence& seq) {
  std::vector<float> ids;
  absl::Status status = AppendNumbers(value, path, -1, ids);
  if (!status.ok()) return status;
  for (size_t t = 0; t < ids.size(); ++t) {
    if (ids[t] != std::floor(ids[t])) {
      return Invalid(absl::StrCat(path, "[", t, "]"),
                     "token ids must be integers");
    }
    // The cast below is undefined outside int32 (found by fuzz_eval_json).
    if (!(ids[t] >= -2147483648.0f && ids[t] < 2147483648.0f)) {
      return Invalid(
          absl::StrCat(path, "[", t, "]"),
          absl::StrCat("token ids must be 32-bit integers; got ", ids[t]));
    }
    seq.token_ids.push_back(static_cast<int32_t>(ids[t]));
  }
  seq.length = static_cast<int64_t>(seq.token_ids.size());
  return absl::OkStatus();
}

// A sequence of features at `path`: a list of steps of `input_dim` numbers.
absl::Status ParseFeatures(const Value& value, const std::string& path,
                           int input_dim, OwnedSequence& seq) {
  absl::StatusOr<const ListValue*> steps =
      AsList(value, path,
             absl::StrCat("a list of time steps, each a list of ", input_dim,
                          " numbers"));
  if (!steps.ok()) return steps.status();
  seq.length = (*steps)->values_size();
  for (int t = 0; t < (*steps)->values_size(); ++t) {
    absl::Status status =
        AppendNumbers((*steps)->values(t), absl::StrCat(path, "[", t, "]"),
                      input_dim, seq.features);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

// "initial_state": one list of state vectors per sequence of `out`.
absl::Status ParseInitialStates(const Value& value,
                                std::vector<OwnedSequence>& out) {
  absl::StatusOr<const ListValue*> states = AsList(
      value, "initial_state",
      "a list with one entry per sequence, each a list of state vectors");
  if (!states.ok()) return states.status();
  if ((*states)->values_size() != static_cast<int>(out.size())) {
    return Invalid("initial_state",
                   absl::StrCat("expected one entry per sequence (", out.size(),
                                "), got ", (*states)->values_size()));
  }
  for (int i = 0; i < (*states)->values_size(); ++i) {
    const std::string path = absl::StrCat("initial_state[", i, "]");
    absl::StatusOr<const ListValue*> list =
        AsList((*states)->values(i), path, "a list of state vectors");
    if (!list.ok()) return list.status();
    for (int s = 0; s < (*list)->values_size(); ++s) {
      absl::Status status =
          AppendNumbers((*list)->values(s), absl::StrCat(path, "[", s, "]"), -1,
                        out[i].initial_state.emplace_back());
      if (!status.ok()) return status;
    }
  }
  return absl::OkStatus();
}

}  // namespace

SequenceInput OwnedSequence::View() const {
  SequenceInput view;
  view.length = length;
  view.features = features;
  view.token_ids = token_ids;
  for (const std::vector<float>& state : initial_state) {
    view.initial_state.push_back(state);
  }
  return view;
}

absl::StatusOr<std::vector<OwnedSequence>> ParseEvalInput(
    absl::string_view json, const Model& model) {
  return ParseEvalInput(json, InputKind{.token_ids = model.takes_token_ids(),
                                        .input_dim = model.input_dim()});
}

absl::StatusOr<std::vector<OwnedSequence>> ParseEvalInput(
    absl::string_view json, const InputKind& kind) {
  Value root;
  absl::StatusOr<TopLevel> top = ParseTopLevel(json, root);
  if (!top.ok()) return top.status();
  absl::StatusOr<const ListValue*> sequences =
      AsList(*top->sequences, "sequences", "a list of sequences");
  if (!sequences.ok()) return sequences.status();
  std::vector<OwnedSequence> out((*sequences)->values_size());
  for (int i = 0; i < (*sequences)->values_size(); ++i) {
    const std::string path = absl::StrCat("sequences[", i, "]");
    absl::Status status =
        kind.token_ids ? ParseTokenIds((*sequences)->values(i), path, out[i])
                       : ParseFeatures((*sequences)->values(i), path,
                                       kind.input_dim, out[i]);
    if (!status.ok()) return status;
  }
  if (top->initial_state != nullptr) {
    absl::Status status = ParseInitialStates(*top->initial_state, out);
    if (!status.ok()) return status;
  }
  return out;
}

std::string FormatEvalOutput(const std::vector<SequenceResult>& results) {
  std::string out = "{\"results\": [";
  for (size_t i = 0; i < results.size(); ++i) {
    const SequenceResult& r = results[i];
    out += i == 0 ? "\n  {" : ",\n  {";
    std::string separator;
    auto field = [&](absl::string_view name) {
      absl::StrAppend(&out, separator, "\"", name, "\": ");
      separator = ", ";
    };
    if (!r.output.empty()) {
      field("output");
      AppendTensor(out, r.output);
    }
    if (!r.forward.empty()) {
      field("forward");
      AppendTensor(out, r.forward);
      field("backward");
      AppendTensor(out, r.backward);
    }
    if (!r.states.empty()) {
      field("states");
      out += "[";
      const std::vector<Tensor>& last = r.states.back();
      for (size_t s = 0; s < last.size(); ++s) {
        if (s > 0) out += ", ";
        AppendTensor(out, last[s]);
      }
      out += "]";
    }
    out += "}";
  }
  out += results.empty() ? "]}\n" : "\n]}\n";
  return out;
}

}  // namespace biserve
