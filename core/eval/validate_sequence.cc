#include "core/eval/validate_sequence.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/eval/field_error.h"

namespace biserve {
namespace {

// Position of the first value that is not finite, or -1. Blocks are checked
// without branching first (a loop the compiler vectorises), since a batch's
// features run to megabytes; only a block with a bad value is searched.
int64_t FirstNonFinite(absl::Span<const float> values) {
  constexpr size_t kBlock = 1024;
  // NaN and +-inf are the floats whose exponent bits are all ones; tested
  // on the bits as integers, which the compiler vectorises whatever its
  // floating-point flags.
  constexpr uint32_t kExponent = 0x7f800000;
  // A raw pointer: absl::Span's checked operator[] kept the loop scalar.
  const float* data = values.data();
  for (size_t start = 0; start < values.size(); start += kBlock) {
    const size_t end = std::min(values.size(), start + kBlock);
    uint32_t bad = 0;
    for (size_t v = start; v < end; ++v) {
      const uint32_t bits = std::bit_cast<uint32_t>(data[v]);
      bad |= (bits & kExponent) == kExponent ? 1u : 0u;
    }
    if (bad == 0) continue;
    for (size_t v = start; v < end; ++v) {
      if (!std::isfinite(values[v])) return static_cast<int64_t>(v);
    }
  }
  return -1;
}

// The input of an Embedding model: one id per step, inside the vocabulary.
absl::Status CheckTokenIds(const Model& model, const SequenceInput& input) {
  if (!input.features.empty()) {
    return absl::InvalidArgumentError(
        "features given, but this model takes token ids (its first layer "
        "is an Embedding)");
  }
  if (static_cast<int64_t>(input.token_ids.size()) != input.length) {
    return FieldError(
        "token_ids",
        absl::StrCat(": expected ", input.length,
                     " ids (one per time step), got ", input.token_ids.size()));
  }
  const int64_t vocabulary = model.embedding()->embeddings.rows();
  for (int64_t t = 0; t < input.length; ++t) {
    if (input.token_ids[t] < 0 || input.token_ids[t] >= vocabulary) {
      return FieldError(
          absl::StrCat("token_ids[", t, "]"),
          absl::StrCat(" = ", input.token_ids[t],
                       " is outside the vocabulary [0, ", vocabulary, ")"));
    }
  }
  return absl::OkStatus();
}

// The input of a feature model: [length, input_dim] values, finite unless
// allowed otherwise.
absl::Status CheckFeatures(const Model& model, const SequenceInput& input,
                           bool allow_non_finite) {
  if (!input.token_ids.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("token ids given, but this model takes ",
                     model.input_dim(), " float features per time step"));
  }
  const int64_t expected = input.length * model.input_dim();
  if (static_cast<int64_t>(input.features.size()) != expected) {
    return FieldError(
        "features",
        absl::StrCat(": expected shape [length, input_dim] = [", input.length,
                     ", ", model.input_dim(), "] (", expected, " values), got ",
                     input.features.size(), " values"));
  }
  const int64_t v = allow_non_finite ? -1 : FirstNonFinite(input.features);
  if (v >= 0) {
    return FieldError(
        absl::StrCat("features[", v / model.input_dim(), "][",
                     v % model.input_dim(), "]"),
        absl::StrCat(" is ", input.features[v], "; inputs must be finite"));
  }
  return absl::OkStatus();
}

// "forward h", as messages name a state.
std::string StateLabel(const StateSpec& state) {
  return absl::StrCat(DirectionName(state.direction), " ",
                      StateKindName(state.kind));
}

// A non-empty initial_state: one tensor per state of the first
// Bidirectional layer, in its order, each [units] and finite unless allowed.
absl::Status CheckInitialState(const Model& model, const SequenceInput& input,
                               bool allow_non_finite) {
  const std::vector<StateSpec>& expected =
      model.bidirectional(model.first_bidirectional()).states;
  if (input.initial_state.size() != expected.size()) {
    std::string names;
    for (const StateSpec& state : expected) {
      absl::StrAppend(&names, names.empty() ? "" : ", ", StateLabel(state),
                      " [", state.units, "]");
    }
    return FieldError(
        "initial_state",
        absl::StrCat(": expected ", expected.size(), " tensors (", names,
                     ": the forward layer's states, then the backward "
                     "layer's), got ",
                     input.initial_state.size()));
  }
  for (size_t s = 0; s < expected.size(); ++s) {
    const absl::Span<const float> state = input.initial_state[s];
    if (static_cast<int>(state.size()) != expected[s].units) {
      return FieldError(
          absl::StrCat("initial_state[", s, "]"),
          absl::StrCat(" (", StateLabel(expected[s]), "): expected [",
                       expected[s].units, "] values, got ", state.size()));
    }
    for (size_t v = 0; !allow_non_finite && v < state.size(); ++v) {
      if (!std::isfinite(state[v])) {
        return FieldError(
            absl::StrCat("initial_state[", s, "][", v, "]"),
            absl::StrCat(" is ", state[v], "; states must be finite"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateSequence(const Model& model, const SequenceInput& input,
                              bool allow_non_finite) {
  if (input.length < 1) {
    return FieldError(
        "length",
        absl::StrCat(" must be at least 1 time step; was ", input.length));
  }
  absl::Status values = model.takes_token_ids()
                            ? CheckTokenIds(model, input)
                            : CheckFeatures(model, input, allow_non_finite);
  if (!values.ok() || input.initial_state.empty()) return values;
  return CheckInitialState(model, input, allow_non_finite);
}

absl::Status ValidateAndMark(const Model& model, bool allow_non_finite,
                             SequenceInput& input) {
  absl::Status status = ValidateSequence(model, input, allow_non_finite);
  if (status.ok()) input.validated = ValidationMark(&model, allow_non_finite);
  return status;
}

}  // namespace biserve
