// ValidateSequence: the one check of a sequence against a model, run once
// per sequence at the seam where it arrives (the request codec, or Evaluate
// for callers that did not).
#pragma once

#include "absl/status/status.h"
#include "core/eval/sequence_input.h"
#include "core/model/model.h"

namespace biserve {

// INVALID_ARGUMENT unless `input` fits `model`: length >= 1, features or
// token ids of the right count, finite features (unless allow_non_finite),
// token ids inside the vocabulary, and an initial_state of the right count
// and sizes. The message names the field, what was expected and what was
// given; when it is about a field of the sequence, the status is a
// FieldError (core/eval/field_error.h) naming it, e.g. "features[3][1]",
// "token_ids[2]", "initial_state[1]", "length".
absl::Status ValidateSequence(const Model& model, const SequenceInput& input,
                              bool allow_non_finite = false);

// ValidateSequence, and on success marks `input` validated for `model`, so
// that Evaluate does not check it again.
absl::Status ValidateAndMark(const Model& model, bool allow_non_finite,
                             SequenceInput& input);

}  // namespace biserve
