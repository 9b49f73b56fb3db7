// OpenInferenceService: inference.GRPCInferenceService (the Open Inference
// Protocol, KServe v2) over the same registry, batcher and metrics as
// biserve's own service, on the same port.
//
// Thin: ModelInfer turns its tensors into a biserve.v1.PredictRequest
// (proto/open_inference_codec.h) and submits it through InferenceService,
// so limits, errors, batching and metrics are the same for both protocols.
#pragma once

#include "core/serving/model_registry.h"
#include "inference/grpc_predict_v2.grpc.pb.h"
#include "proto/open_inference_codec.h"
#include "server/inference_service.h"

namespace biserve {

// Every method of inference.GRPCInferenceService, on raw bytes (admitted
// by the same RequestAdmission as biserve's own service).
using RawOpenInferenceService =
    inference::GRPCInferenceService::WithRawCallbackMethod_ServerLive<
        inference::GRPCInferenceService::WithRawCallbackMethod_ServerReady<
            inference::GRPCInferenceService::WithRawCallbackMethod_ModelReady<
                inference::GRPCInferenceService::
                    WithRawCallbackMethod_ServerMetadata<
                        inference::GRPCInferenceService::
                            WithRawCallbackMethod_ModelMetadata<
                                inference::GRPCInferenceService::
                                    WithRawCallbackMethod_ModelInfer<
                                        inference::GRPCInferenceService::
                                            Service>>>>>>;

class OpenInferenceService final : public RawOpenInferenceService {
 public:
  // Not owned; must outlive this service.
  OpenInferenceService(const ModelRegistry* registry,
                       InferenceService* inference)
      : registry_(registry), inference_(inference) {}

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* context,
                                       const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* context,
                                        const grpc::ByteBuffer* request,
                                        grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* context,
                                       const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* context,
                                           const grpc::ByteBuffer* request,
                                           grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* context,
                                          const grpc::ByteBuffer* request,
                                          grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;

 private:
  // `request` as a PredictRequest for `servable`, or why it cannot be
  // computed: INVALID_ARGUMENT (its tensors), RESOURCE_EXHAUSTED (its reply
  // would not fit --max_message_bytes).
  absl::StatusOr<OpenInferCall> ToPredict(
      const inference::ModelInferRequest& request,
      const ServableModel& servable) const;

  const ModelRegistry* const registry_;
  InferenceService* const inference_;
};

}  // namespace biserve
