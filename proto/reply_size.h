// The serialized size of a request's reply, known from the model and the
// sequences' lengths before anything is computed, so that a reply that
// cannot fit --max_message_bytes is refused at once instead of computed in
// full and then dropped by gRPC.
//
// Exact: every value is a fixed 4-byte float and every other field's
// length follows from the shapes (tests/proto/reply_size_test.cc checks
// the sizes against real serialized replies).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "core/eval/evaluator.h"
#include "core/model/model.h"
#include "proto/open_inference_codec.h"

namespace biserve {

// Bytes of the PredictResponse (ResultsToResponse) that `model`, served as
// `model_name` version `version`, gives `sequences` with `options`, echoing
// `request_id`.
int64_t PredictResponseBytes(const Model& model, absl::string_view model_name,
                             int64_t version, absl::string_view request_id,
                             const EvalOptions& options,
                             absl::Span<const SequenceInput> sequences);

// Bytes of the ModelInferResponse (InferResponseFromPredict) that answers
// `call` with `model`, served as `model_name` version `version`.
int64_t InferResponseBytes(const OpenInferCall& call, const Model& model,
                           absl::string_view model_name, int64_t version);

// OK if a reply of `bytes` fits `max_bytes` (the server's
// --max_message_bytes; 0: no limit), else RESOURCE_EXHAUSTED saying how big
// it would be, the limit, and what the client can do.
absl::Status CheckReplyBytes(int64_t bytes, int64_t max_bytes);

}  // namespace biserve
