// OpenInferenceService: inference.GRPCInferenceService (the Open Inference
// Protocol, KServe v2) over the same registry, batcher and metrics as
// biserve's own service, on the same port.
//
// Thin: ModelInfer turns its tensors into a biserve.v1.PredictRequest
// (proto/open_inference_codec.h) and submits it through InferenceService,
// so limits, errors, batching and metrics are the same for both protocols.
#pragma once

#include "core/model_registry.h"
#include "inference/grpc_predict_v2.grpc.pb.h"
#include "server/inference_service.h"

namespace biserve {

class OpenInferenceService final
    : public inference::GRPCInferenceService::CallbackService {
 public:
  // Not owned; must outlive this service.
  OpenInferenceService(const ModelRegistry* registry,
                       InferenceService* inference)
      : registry_(registry), inference_(inference) {}

  grpc::ServerUnaryReactor* ServerLive(
      grpc::CallbackServerContext* context,
      const inference::ServerLiveRequest* request,
      inference::ServerLiveResponse* response) override;
  grpc::ServerUnaryReactor* ServerReady(
      grpc::CallbackServerContext* context,
      const inference::ServerReadyRequest* request,
      inference::ServerReadyResponse* response) override;
  grpc::ServerUnaryReactor* ModelReady(
      grpc::CallbackServerContext* context,
      const inference::ModelReadyRequest* request,
      inference::ModelReadyResponse* response) override;
  grpc::ServerUnaryReactor* ServerMetadata(
      grpc::CallbackServerContext* context,
      const inference::ServerMetadataRequest* request,
      inference::ServerMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelMetadata(
      grpc::CallbackServerContext* context,
      const inference::ModelMetadataRequest* request,
      inference::ModelMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelInfer(
      grpc::CallbackServerContext* context,
      const inference::ModelInferRequest* request,
      inference::ModelInferResponse* response) override;

 private:
  const ModelRegistry* const registry_;
  InferenceService* const inference_;
};

}  // namespace biserve
