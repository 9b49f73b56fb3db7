// Fuzz targets for the request codecs: a PredictRequest, and a ModelInfer
// request, parsed from the bytes a gRPC call delivers and taken down the
// server's path against a bundled model (the one the request names):
// checked, evaluated when accepted, and turned into a response. The server
// runs with its default limits, and with --allow_non_finite when the
// request_id (ModelInfer: id) starts with "allow_non_finite".
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "biserve/v1/inference.pb.h"
#include "core/eval/evaluator.h"
#include "core/model/model.h"
#include "inference/grpc_predict_v2.pb.h"
#include "proto/inference_codec.h"
#include "proto/open_inference_codec.h"
#include "tests/fuzz/fuzz_support.h"

namespace biserve {
namespace {

RequestLimits LimitsFor(const std::string& request_id) {
  RequestLimits limits;
  limits.allow_non_finite = absl::StartsWith(request_id, "allow_non_finite");
  return limits;
}

// What InferenceService::Submit and the batcher do with a parsed request.
// Returns whether the request was accepted (and then fills `response`).
bool Serve(const v1::PredictRequest& request, const Model& model,
           const RequestLimits& limits, v1::PredictResponse* response) {
  absl::StatusOr<std::vector<SequenceInput>> sequences =
      SequencesFromRequest(request, model, limits);
  if (!sequences.ok()) return false;
  // An accepted request must evaluate: the codec's checks are all that
  // stands between a client and the evaluator.
  absl::StatusOr<std::vector<SequenceResult>> results = Evaluate(
      model, *sequences, EvalOptionsFromRequest(request, limits), FuzzPool());
  FuzzCheck(results.ok(), absl::StrCat("an accepted request failed: ",
                                       results.status().ToString()));
  FuzzCheck(results->size() == sequences->size(), "one result per sequence");
  ResultsToResponse(model, *std::move(results), response);
  FuzzCheck(response->sequences_size() == static_cast<int>(sequences->size()),
            "one response sequence per request sequence");
  return true;
}

}  // namespace

int FuzzPredictRequest(const uint8_t* data, size_t size) {
  v1::PredictRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  v1::PredictResponse response;
  Serve(request, ModelNamed(request.model_name()),
        LimitsFor(request.request_id()), &response);
  return 0;
}

int FuzzModelInfer(const uint8_t* data, size_t size) {
  inference::ModelInferRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  const Model& model = ModelNamed(request.model_name());
  absl::StatusOr<OpenInferCall> call = PredictRequestFromInfer(request, model);
  if (!call.ok()) return 0;
  v1::PredictResponse predict;
  if (!Serve(call->request, model, LimitsFor(request.id()), &predict)) {
    return 0;
  }
  inference::ModelInferResponse response;
  absl::Status status =
      InferResponseFromPredict(predict, *call, model, &response);
  FuzzCheck(status.ok(), absl::StrCat("an evaluated ModelInfer request has no "
                                      "response: ",
                                      status.ToString()));
  return 0;
}

}  // namespace biserve
