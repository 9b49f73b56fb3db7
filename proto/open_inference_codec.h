// The seam between the Open Inference Protocol (inference/
// grpc_predict_v2.proto) and biserve's own messages: a ModelInfer request
// becomes a biserve.v1.PredictRequest (so it takes the same path: checks,
// batching, metrics), and the PredictResponse becomes tensors.
//
// Tensors (B sequences, T time steps):
//   inputs   features         FP32 [B, T, input_dim]   (feature models)
//            token_ids        INT32|INT64 [B, T]       (Embedding models)
//            lengths          INT32|INT64 [B]          optional: sequence b
//                             has lengths[b] <= T steps; the steps after it
//                             are padding, never computed
//            initial_state/<layer>/<forward_h|forward_c|backward_h|backward_c>
//                             FP32 [B, units]          optional, all or none
//   outputs  output           FP32 [B, T, D] or [B, D] (the model's output)
//            forward, backward FP32 [B, T, units] or [B, units]
//            state/<layer>/<forward_h|...> FP32 [B, units]
// Output steps past a sequence's length are zeros.
//
// A model with a signature (core/model/signature.h: one imported from ONNX,
// say) is described by ModelMetadata with the signature's tensors only, and
// a ModelInfer request that sends the signature's INPUT is read and answered
// in the signature's names and layouts, as ONNX Runtime behind Triton would:
//   INPUT      FP32 [B, T, input_dim], or INT64|INT32 [B, T] token ids;
//              time_major: [T, B, ...]
//   LENGTHS    INT64|INT32 [B], each in [1, T]; without it every sequence
//              has T steps
//   INITIAL_H  FP32 [2, B, units] (forward, backward) of the first layer;
//   INITIAL_C  one not sent is zeros
//   OUTPUT     FP32 [B, T, D] (time_major [T, B, D]) or [B, D]; a step past
//              a sequence's length holds Model::padding_step_output()
//   FINAL_H    FP32 [2 * layers, B, units]: layer 0 forward, layer 0
//   FINAL_C    backward, layer 1 forward, ...
// No outputs requested: all of the signature's, in its order. A request in
// biserve's names (above) works as for any model.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "biserve/v1/inference.pb.h"
#include "core/model/model.h"
#include "inference/grpc_predict_v2.pb.h"
#include "proto/inference_codec.h"

namespace biserve {

struct OpenTensorSpec {
  std::string name;
  std::string datatype;
  std::vector<int64_t> shape;  // -1: variable (batch, time)
};

// What the model takes and gives, as Open Inference tensors: the
// signature's tensors when it has one, else biserve's names.
std::vector<OpenTensorSpec> OpenInferenceInputs(const Model& model);
std::vector<OpenTensorSpec> OpenInferenceOutputs(const Model& model);

// A parsed ModelInfer request.
struct OpenInferCall {
  v1::PredictRequest request;
  std::vector<std::string> outputs;  // names to return, in order
  int64_t time_steps = 0;            // T of the inputs
  bool raw_outputs = false;          // answer in raw_output_contents
  // Tensors named and laid out by the model's signature (the request sent
  // its INPUT), not by biserve.
  bool signature = false;
};

// The shape of output `name` in the reply to `call` (B and T filled in);
// empty if the model has no such output.
std::vector<int64_t> InferOutputShape(const OpenInferCall& call,
                                      const Model& model,
                                      absl::string_view name);

// INVALID_ARGUMENT naming the input (quoted, see core/common/quoted_input.h),
// the expected and the given shape or datatype; an input of the other kind
// (features sent to an Embedding model, token_ids to a feature model) names
// the one the model takes. Unless limits.allow_non_finite, a NaN or Inf in
// features (in a sequence's real steps) or initial states is refused by its
// position in the client's tensor: "input 'features': element [0, 2, 7] is
// NaN; ...". Only `limits.allow_non_finite` is read here.
absl::StatusOr<OpenInferCall> PredictRequestFromInfer(
    const inference::ModelInferRequest& request, const Model& model,
    const RequestLimits& limits);

// The same without the finiteness check (NaN and Inf are then refused later,
// by SequencesFromRequest, in PredictRequest's terms: "sequences[0].
// features[0][7]"). The server uses the form above; this one is for callers
// without limits (the request fuzz target).
absl::StatusOr<OpenInferCall> PredictRequestFromInfer(
    const inference::ModelInferRequest& request, const Model& model);

// The tensors of `predict` for the call's outputs.
absl::Status InferResponseFromPredict(const v1::PredictResponse& predict,
                                      const OpenInferCall& call,
                                      const Model& model,
                                      inference::ModelInferResponse* response);

}  // namespace biserve
