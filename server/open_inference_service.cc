#include "server/open_inference_service.h"

#include <algorithm>
#include <memory>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "proto/open_inference_codec.h"
#include "server/call_deadline.h"
#include "server/grpc_status.h"

namespace biserve {
namespace {

// The protocol's versions are strings; ours are integers, "" the newest.
absl::StatusOr<int64_t> ParseVersion(const std::string& version) {
  if (version.empty()) return 0;
  int64_t v;
  const bool digits = std::all_of(version.begin(), version.end(),
                                  [](char c) { return c >= '0' && c <= '9'; });
  if (!digits || !absl::SimpleAtoi(version, &v) || v < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model_version must be empty (newest) or a positive integer; got \"",
        version, "\""));
  }
  return v;
}

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context,
                                    const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace

grpc::ServerUnaryReactor* OpenInferenceService::ServerLive(
    grpc::CallbackServerContext* context, const inference::ServerLiveRequest*,
    inference::ServerLiveResponse* response) {
  response->set_live(true);
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* OpenInferenceService::ServerReady(
    grpc::CallbackServerContext* context, const inference::ServerReadyRequest*,
    inference::ServerReadyResponse* response) {
  response->set_ready(inference_->accepting());
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* OpenInferenceService::ModelReady(
    grpc::CallbackServerContext* context,
    const inference::ModelReadyRequest* request,
    inference::ModelReadyResponse* response) {
  absl::StatusOr<int64_t> version = ParseVersion(request->version());
  if (!version.ok()) return FinishNow(context, version.status());
  response->set_ready(inference_->accepting() &&
                      registry_->Get(request->name(), *version).ok());
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* OpenInferenceService::ServerMetadata(
    grpc::CallbackServerContext* context,
    const inference::ServerMetadataRequest*,
    inference::ServerMetadataResponse* response) {
  response->set_name("biserve");
  response->set_version(BISERVE_VERSION);
  // binary_tensor_data: raw_input_contents / raw_output_contents;
  // parameters: the "raw_output" request parameter; sequence_lengths
  // (biserve's): the optional "lengths" input for ragged batches.
  for (const char* extension :
       {"binary_tensor_data", "parameters", "sequence_lengths"}) {
    response->add_extensions(extension);
  }
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* OpenInferenceService::ModelMetadata(
    grpc::CallbackServerContext* context,
    const inference::ModelMetadataRequest* request,
    inference::ModelMetadataResponse* response) {
  absl::StatusOr<int64_t> version = ParseVersion(request->version());
  if (!version.ok()) return FinishNow(context, version.status());
  absl::StatusOr<ServableModel> servable =
      registry_->Get(request->name(), *version);
  if (!servable.ok()) return FinishNow(context, servable.status());
  response->set_name(servable->name);
  response->set_platform("biserve");
  for (int64_t v : registry_->AvailableVersions(servable->name)) {
    response->add_versions(absl::StrCat(v));
  }
  auto add = [](const OpenTensorSpec& spec, auto* list) {
    auto* t = list->Add();
    t->set_name(spec.name);
    t->set_datatype(spec.datatype);
    t->mutable_shape()->Assign(spec.shape.begin(), spec.shape.end());
  };
  for (const OpenTensorSpec& s : OpenInferenceInputs(*servable->model)) {
    add(s, response->mutable_inputs());
  }
  for (const OpenTensorSpec& s : OpenInferenceOutputs(*servable->model)) {
    add(s, response->mutable_outputs());
  }
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* OpenInferenceService::ModelInfer(
    grpc::CallbackServerContext* context,
    const inference::ModelInferRequest* request,
    inference::ModelInferResponse* response) {
  const absl::Time received = absl::Now();
  absl::StatusOr<int64_t> version = ParseVersion(request->model_version());
  if (!version.ok()) return FinishNow(context, version.status());
  // The model shapes the tensors; Submit looks it up again (and pins it).
  absl::StatusOr<ServableModel> servable =
      registry_->Get(request->model_name(), *version);
  if (!servable.ok()) return FinishNow(context, servable.status());
  absl::StatusOr<OpenInferCall> parsed =
      PredictRequestFromInfer(*request, *servable->model);
  if (!parsed.ok()) return FinishNow(context, parsed.status());

  struct Call {
    OpenInferCall call;
    v1::PredictResponse predict;
    std::shared_ptr<const Model> model;
  };
  auto call = std::make_shared<Call>();
  call->call = *std::move(parsed);
  call->call.request.set_model_version(servable->version);
  call->model = servable->model;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status status = inference_->Submit(
      call->call.request, &call->predict, "ModelInfer", received,
      DeadlineOf(*context), [context] { return context->IsCancelled(); },
      [call, response, reactor](absl::Status s) {
        if (s.ok()) {
          s = InferResponseFromPredict(call->predict, call->call, *call->model,
                                       response);
        }
        reactor->Finish(ToGrpcStatus(s));
      });
  if (!status.ok()) reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace biserve
