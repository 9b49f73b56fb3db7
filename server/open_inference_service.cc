#include "server/open_inference_service.h"

#include <algorithm>
#include <memory>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/common/quoted_input.h"
#include "proto/open_inference_codec.h"
#include "proto/reply_size.h"
#include "server/call_deadline.h"
#include "server/grpc_status.h"
#include "server/raw_unary_call.h"

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
        "model_version must be empty (newest) or a positive integer; got ",
        QuotedInput(version)));
  }
  return v;
}

}  // namespace

// Each method admits its request's bytes through the shared
// RequestAdmission (InferenceService::Admit) before anything is parsed.

grpc::ServerUnaryReactor* OpenInferenceService::ServerLive(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* bytes,
    grpc::ByteBuffer* reply) {
  auto* call = new RawUnaryCall<inference::ServerLiveRequest,
                                inference::ServerLiveResponse>(reply);
  absl::StatusOr<RequestAdmission::Reservation> reservation = inference_->Admit(
      *context, *bytes, &call->request, Rpc::kServerLive, inference_->Now());
  if (reservation.ok()) call->response.set_live(true);
  call->Reply(reservation.status());
  return call;
}

grpc::ServerUnaryReactor* OpenInferenceService::ServerReady(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* bytes,
    grpc::ByteBuffer* reply) {
  auto* call = new RawUnaryCall<inference::ServerReadyRequest,
                                inference::ServerReadyResponse>(reply);
  absl::StatusOr<RequestAdmission::Reservation> reservation = inference_->Admit(
      *context, *bytes, &call->request, Rpc::kServerReady, inference_->Now());
  if (reservation.ok()) call->response.set_ready(inference_->accepting());
  call->Reply(reservation.status());
  return call;
}

grpc::ServerUnaryReactor* OpenInferenceService::ModelReady(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* bytes,
    grpc::ByteBuffer* reply) {
  auto* call = new RawUnaryCall<inference::ModelReadyRequest,
                                inference::ModelReadyResponse>(reply);
  absl::Status status = inference_
                            ->Admit(*context, *bytes, &call->request,
                                    Rpc::kModelReady, inference_->Now())
                            .status();
  if (status.ok()) {
    absl::StatusOr<int64_t> version = ParseVersion(call->request.version());
    status = version.status();
    if (version.ok()) {
      call->response.set_ready(
          inference_->accepting() &&
          registry_->Get(call->request.name(), *version).ok());
    }
  }
  call->Reply(status);
  return call;
}

grpc::ServerUnaryReactor* OpenInferenceService::ServerMetadata(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* bytes,
    grpc::ByteBuffer* reply) {
  auto* call = new RawUnaryCall<inference::ServerMetadataRequest,
                                inference::ServerMetadataResponse>(reply);
  absl::Status status = inference_
                            ->Admit(*context, *bytes, &call->request,
                                    Rpc::kServerMetadata, inference_->Now())
                            .status();
  if (status.ok()) {
    call->response.set_name("biserve");
    call->response.set_version(BISERVE_VERSION);
    // binary_tensor_data: raw_input_contents / raw_output_contents;
    // parameters: the "raw_output" request parameter; sequence_lengths
    // (biserve's): the optional "lengths" input for ragged batches.
    for (const char* extension :
         {"binary_tensor_data", "parameters", "sequence_lengths"}) {
      call->response.add_extensions(extension);
    }
  }
  call->Reply(status);
  return call;
}

grpc::ServerUnaryReactor* OpenInferenceService::ModelMetadata(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* bytes,
    grpc::ByteBuffer* reply) {
  auto* call = new RawUnaryCall<inference::ModelMetadataRequest,
                                inference::ModelMetadataResponse>(reply);
  call->Reply([&]() -> absl::Status {
    absl::Status admitted = inference_
                                ->Admit(*context, *bytes, &call->request,
                                        Rpc::kModelMetadata, inference_->Now())
                                .status();
    if (!admitted.ok()) return admitted;
    absl::StatusOr<int64_t> version = ParseVersion(call->request.version());
    if (!version.ok()) return version.status();
    absl::StatusOr<ServableModel> servable =
        registry_->Get(call->request.name(), *version);
    if (!servable.ok()) return servable.status();
    inference::ModelMetadataResponse& response = call->response;
    response.set_name(servable->name);
    response.set_platform("biserve");
    for (int64_t v : registry_->AvailableVersions(servable->name)) {
      response.add_versions(absl::StrCat(v));
    }
    auto add = [](const OpenTensorSpec& spec, auto* list) {
      auto* t = list->Add();
      t->set_name(spec.name);
      t->set_datatype(spec.datatype);
      t->mutable_shape()->Assign(spec.shape.begin(), spec.shape.end());
    };
    for (const OpenTensorSpec& s : OpenInferenceInputs(*servable->model)) {
      add(s, response.mutable_inputs());
    }
    for (const OpenTensorSpec& s : OpenInferenceOutputs(*servable->model)) {
      add(s, response.mutable_outputs());
    }
    return absl::OkStatus();
  }());
  return call;
}

absl::StatusOr<OpenInferCall> OpenInferenceService::ToPredict(
    const inference::ModelInferRequest& request,
    const ServableModel& servable) const {
  absl::StatusOr<OpenInferCall> call =
      PredictRequestFromInfer(request, *servable.model, inference_->limits());
  if (!call.ok()) return call.status();
  // The reply's size is known from the shapes: one that cannot be sent is
  // refused before it is computed.
  if (absl::Status s =
          CheckReplyBytes(InferResponseBytes(*call, *servable.model,
                                             servable.name, servable.version),
                          inference_->max_reply_bytes());
      !s.ok()) {
    return s;
  }
  call->request.set_model_version(servable.version);
  return call;
}

grpc::ServerUnaryReactor* OpenInferenceService::ModelInfer(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* bytes,
    grpc::ByteBuffer* reply) {
  // The call owns the client's request, the PredictRequest made from it and
  // the PredictResponse computed for it until the reply is sent.
  struct InferCall {
    inference::ModelInferRequest request;
    OpenInferCall call;
    v1::PredictResponse predict;
    std::shared_ptr<const Model> model;
  };
  using Call = RawUnaryCall<InferCall, inference::ModelInferResponse>;
  const absl::Time received = inference_->Now();
  auto* call = new Call(reply);
  InferCall& infer = call->request;
  absl::StatusOr<RequestAdmission::Reservation> reservation = inference_->Admit(
      *context, *bytes, &infer.request, Rpc::kModelInfer, received);
  if (!reservation.ok()) {
    call->Reply(reservation.status());
    return call;
  }
  call->reservation = *std::move(reservation);
  // Refusals before Submit are counted here (Submit counts the rest), under
  // the model once it is known.
  auto refuse = [&](const absl::Status& status, const std::string& model) {
    inference_->Refused(Rpc::kModelInfer, status, received, model);
    call->Reply(status);
    return call;
  };
  if (absl::Status s = inference_->CheckAccepting(); !s.ok()) {
    return refuse(s, "");
  }
  absl::StatusOr<int64_t> version = ParseVersion(infer.request.model_version());
  if (!version.ok()) return refuse(version.status(), "");
  // The model shapes the tensors; Submit looks it up again (and pins it).
  absl::StatusOr<ServableModel> servable =
      registry_->Get(infer.request.model_name(), *version);
  if (!servable.ok()) {
    const bool known = registry_->IsServing(infer.request.model_name());
    return refuse(servable.status(), known ? infer.request.model_name() : "");
  }
  absl::StatusOr<OpenInferCall> parsed = ToPredict(infer.request, *servable);
  if (!parsed.ok()) {
    inference_->Refused(Rpc::kModelInfer, parsed.status(), received, *servable);
    call->Reply(parsed.status());
    return call;
  }
  infer.call = *std::move(parsed);
  infer.model = servable->model;
  absl::Status status = inference_->Submit(
      infer.call.request, &infer.predict, Rpc::kModelInfer, received,
      DeadlineOf(*context), [context] { return context->IsCancelled(); },
      [call](absl::Status s) {
        InferCall& done = call->request;
        if (s.ok()) {
          s = InferResponseFromPredict(done.predict, done.call, *done.model,
                                       &call->response);
        }
        call->Reply(s);
      });
  if (!status.ok()) call->Reply(status);
  return call;
}

}  // namespace biserve
