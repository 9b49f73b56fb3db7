// The seam between the service messages (biserve/v1/inference.proto) and
// core/: requests into SequenceInputs, results and registry states into
// responses. No gRPC here; server/ calls these and maps Status to gRPC.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "biserve/v1/inference.pb.h"
#include "core/eval/evaluator.h"
#include "core/model/model.h"
#include "core/model/model_config.h"
#include "core/serving/model_registry.h"

namespace biserve {

// What the server accepts in one request (its flags).
struct RequestLimits {
  int max_sequences_per_request = 1024;
  int64_t max_steps_per_sequence = 100000;
  bool allow_non_finite = false;  // NaN and Inf in features and states
};

// The --max_sequences_per_request rule; the server also applies it to the
// count read from the wire, before the sequences are parsed.
absl::Status CheckSequenceCount(int64_t count, const RequestLimits& limits);

// Views into `request` (which must outlive them), one per sequence, after
// checking them against `model` and `limits`: INVALID_ARGUMENT naming the
// field ("sequences[2].features"), the expected and the given shape. This
// is where a served request's sequences are validated, once: they come back
// marked (ValidateAndMark), so Evaluate does not check them again.
absl::StatusOr<std::vector<SequenceInput>> SequencesFromRequest(
    const v1::PredictRequest& request, const Model& model,
    const RequestLimits& limits);

// What the request asks to be returned.
EvalOptions EvalOptionsFromRequest(const v1::PredictRequest& request,
                                   const RequestLimits& limits);

// Moves `results` into `response->sequences`, naming each state's layer.
void ResultsToResponse(const Model& model, std::vector<SequenceResult> results,
                       v1::PredictResponse* response);

// Inputs, outputs (time axis -1), layers, versions, batching and limits.
void ModelMetadataToProto(const ServableModel& servable,
                          const std::vector<int64_t>& available_versions,
                          bool batching_enabled, const RequestLimits& limits,
                          v1::GetModelMetadataResponse* response);

void ModelStatusesToProto(const std::vector<ModelStatus>& statuses,
                          v1::ListModelsResponse* response);

}  // namespace biserve
