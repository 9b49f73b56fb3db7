// SequenceInput: one sequence of a request, as Evaluate takes it.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "core/model/model.h"

namespace biserve {

struct SequenceInput;

// Whether a SequenceInput passed ValidateSequence, and for which model and
// rules. Only ValidateAndMark makes a set mark, so Evaluate can trust it and
// skip checking the sequence a second time. Default: not validated.
class ValidationMark {
 public:
  ValidationMark() = default;

  // Whether the sequence passed for `model` under rules at least as strict
  // as `allow_non_finite` asks for.
  bool Covers(const Model& model, bool allow_non_finite) const {
    return model_ == &model && (allow_non_finite || !allow_non_finite_);
  }

 private:
  friend absl::Status ValidateAndMark(const Model& model, bool allow_non_finite,
                                      SequenceInput& input);

  ValidationMark(const Model* model, bool allow_non_finite)
      : model_(model), allow_non_finite_(allow_non_finite) {}

  // Not owned; compared by address, never read. A mark is used while its
  // model lives (a request's task pins the servable it was validated for).
  const Model* model_ = nullptr;
  bool allow_non_finite_ = false;
};

// One sequence of a request. Borrowed: the caller keeps the values alive
// until Evaluate returns.
struct SequenceInput {
  int64_t length = 0;
  absl::Span<const float> features;     // [length, input_dim], feature models
  absl::Span<const int32_t> token_ids;  // [length], Embedding models
  // Empty (zeros), or the first Bidirectional layer's initial states in
  // Keras' order (that layer's `states`: forward h, forward c (LSTM),
  // backward h, backward c (LSTM)), each [units].
  std::vector<absl::Span<const float>> initial_state;
  // Set by ValidateAndMark; whoever changes the fields above after that
  // must reset it.
  ValidationMark validated;
};

}  // namespace biserve
