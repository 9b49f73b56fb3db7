// The JSON that biserve_eval reads and prints.
//
// Input:  {"sequences": [[[f, ...], ...], ...],      one list of steps each
//          "initial_state": [[[f, ...], ...], ...]}  optional, per sequence
// Output: {"results": [{"output": ..., "forward": ..., "backward": ...,
//                       "states": [...]}, ...]}
// JSON is parsed with Protobuf's JSON parser into google.protobuf.Value, so
// no other JSON library is needed.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/eval/evaluator.h"
#include "core/model/model.h"

namespace biserve {

// One parsed sequence; owns the values a SequenceInput borrows.
struct OwnedSequence {
  int64_t length = 0;
  std::vector<float> features;
  std::vector<int32_t> token_ids;
  std::vector<std::vector<float>> initial_state;

  // A view for Evaluate; valid while this object lives and is unchanged.
  SequenceInput View() const;
};

// Parses biserve_eval's input for `model` (features or token ids by the
// model's input). INVALID_ARGUMENT names the JSON path of a bad value, e.g.
// "sequences[1][3]: expected 16 numbers, got 15".
absl::StatusOr<std::vector<OwnedSequence>> ParseEvalInput(
    absl::string_view json, const Model& model);

// What a model takes per time step, for callers without the Model (a client
// learns it from GetModelMetadata).
struct InputKind {
  bool token_ids = false;  // one token id per step, else input_dim floats
  int input_dim = 0;
};
absl::StatusOr<std::vector<OwnedSequence>> ParseEvalInput(
    absl::string_view json, const InputKind& kind);

// Formats results as {"results": [...]}, arrays nested like the tensors:
// "output", "forward" and "backward" where the results hold them, and
// "states" (the last Bidirectional layer's) where states were evaluated.
std::string FormatEvalOutput(const std::vector<SequenceResult>& results);

}  // namespace biserve
