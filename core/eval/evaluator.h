// Evaluate: a ragged batch of sequences through a Model.
//
// Every sequence's results equal its own evaluation alone: the batch is
// packed without padding (core/kernels/packed_layout.h), and no step of one
// sequence reads another's.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/common/tensor.h"
#include "core/common/thread_pool.h"
#include "core/eval/sequence_input.h"
#include "core/eval/validate_sequence.h"
#include "core/model/model.h"

namespace biserve {

struct EvalOptions {
  // The model's output: the merged output of the last layer, or the head's.
  bool output = true;
  // The last Bidirectional layer's per-direction outputs. Always given when
  // that layer's merge mode is none (they are then the model's outputs).
  bool directions = false;
  // Final states of every Bidirectional layer.
  bool states = false;
  // Accept NaN and Inf in features and initial states (they propagate into
  // the outputs); rejected by default.
  bool allow_non_finite = false;
};

struct SequenceResult {
  // [length, D] when the model returns sequences, else [D]. Empty when not
  // asked for, or when the last layer's merge mode is none.
  Tensor output;
  // The last Bidirectional layer's outputs per direction, [length, units]
  // (backward aligned to input time, as Keras returns it) or [units].
  Tensor forward;
  Tensor backward;
  // Per Bidirectional layer in model order, its final states in Keras'
  // order (the layer's `states`).
  std::vector<std::vector<Tensor>> states;
};

// What one Evaluate call computed, in time steps (rows of the packed
// buffers), summed over the batch's sequences.
struct EvalStats {
  int64_t sequences = 0;
  int64_t real_steps = 0;  // the sequences' lengths added up
  // Rows the recurrences processed: at each step, the sequences still
  // alive. Equal to real_steps: packed batches compute no padding.
  int64_t computed_steps = 0;
  // What a padded batch would process: sequences x the longest length.
  int64_t padded_steps = 0;
};

// Evaluates every sequence of `batch` at once. Checks each sequence that
// is not marked validated for `model` (ValidateAndMark, as the request
// codec does) with ValidateSequence first, and fails with the first error
// (prefixed "sequences[i]: ") before computing anything.
// `stats`, when given, receives what was computed.
// REQUIRES: not called from a task running on `pool`.
absl::StatusOr<std::vector<SequenceResult>> Evaluate(
    const Model& model, absl::Span<const SequenceInput> batch,
    const EvalOptions& options, ThreadPool& pool, EvalStats* stats = nullptr);

// Evaluates one short sequence of zeros (token id 0), so that a model's
// first real request does not pay for page faults and lazy set-up.
// REQUIRES: not called from a task running on `pool`.
absl::Status WarmUp(const Model& model, ThreadPool& pool);

}  // namespace biserve
