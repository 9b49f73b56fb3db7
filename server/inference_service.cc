#include "server/inference_service.h"

#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "core/common/mutex.h"
#include "proto/reply_size.h"
#include "server/call_deadline.h"
#include "server/grpc_status.h"
#include "server/raw_unary_call.h"

namespace biserve {
namespace {

// PredictStream: reads requests one after another and submits each as it
// arrives; answers are written in completion order, one write in flight at
// a time. A message that is refused before it is parsed (not a valid
// PredictRequest, over the parse budget or --max_inflight_bytes) is
// answered with `error` set, like any failed request, and the stream goes
// on. The stream finishes when the client has half-closed (or the call is
// cancelled), every submitted request has been answered and the last write
// is done. Lock discipline: mu_ guards the bookkeeping below; gRPC
// operations (StartRead, StartWrite, Finish) are started outside it.
class PredictStreamReactor final
    : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  PredictStreamReactor(InferenceService* service,
                       grpc::CallbackServerContext* context)
      : service_(service), context_(context), deadline_(DeadlineOf(*context)) {
    StartRead(&incoming_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // half-closed by the client, or the call is over
      {
        MutexLock lock(&mu_);
        reads_done_ = true;
      }
      MaybeFinish();
      return;
    }
    grpc::ByteBuffer bytes;
    bytes.Swap(&incoming_);
    {
      MutexLock lock(&mu_);
      ++pending_;
    }
    Submit(bytes);
    StartRead(&incoming_);
  }

  void OnWriteDone(bool ok) override {
    grpc::ByteBuffer* next = nullptr;
    {
      MutexLock lock(&mu_);
      writes_.pop_front();
      if (!ok) {
        broken_ = true;  // the client is gone: drop what is left
        writes_.clear();
      }
      if (writes_.empty()) {
        writing_ = false;
      } else {
        next = &writes_.front();
      }
    }
    if (next != nullptr) {
      StartWrite(next);
    } else {
      MaybeFinish();
    }
  }

  void OnCancel() override { cancelled_.store(true); }

  void OnDone() override { delete this; }

 private:
  // One request and its answer, alive until the answer is queued.
  struct Call {
    v1::PredictRequest request;
    v1::PredictResponse response;
    RequestAdmission::Reservation reservation;
  };

  void Submit(const grpc::ByteBuffer& bytes) {
    const absl::Time received = service_->Now();
    auto call = std::make_unique<Call>();
    absl::StatusOr<RequestAdmission::Reservation> reservation =
        service_->AdmitPredict(*context_, bytes, &call->request,
                               Rpc::kPredictStream, received);
    if (!reservation.ok()) {
      Answer(std::move(call), reservation.status());
      return;
    }
    call->reservation = *std::move(reservation);
    Call* raw = call.get();
    const std::string request_id = call->request.request_id();
    // The finish callback owns the call, so the request and response live
    // until the answer is queued for writing.
    auto finish = [this, call = std::move(call)](absl::Status status) mutable {
      Answer(std::move(call), status);
    };
    absl::Status status = service_->Submit(
        raw->request, &raw->response, Rpc::kPredictStream, received, deadline_,
        [this] { return cancelled_.load(); }, std::move(finish));
    if (!status.ok()) {
      // `finish` never ran and was destroyed with the call: answer from a
      // fresh one carrying the request id.
      auto refused = std::make_unique<Call>();
      refused->request.set_request_id(request_id);
      Answer(std::move(refused), status);
    }
  }

  // Queues one answer for writing; `status` not OK turns it into an error
  // answer carrying the request id.
  void Answer(std::unique_ptr<Call> call, const absl::Status& status) {
    if (!status.ok()) {
      call->response.Clear();
      call->response.set_request_id(call->request.request_id());
      call->response.mutable_error()->set_code(static_cast<int>(status.code()));
      call->response.mutable_error()->set_message(
          std::string(status.message()));
    }
    grpc::ByteBuffer answer;
    bool own_buffer;
    grpc::SerializationTraits<v1::PredictResponse>::Serialize(
        call->response, &answer, &own_buffer);
    call.reset();  // releases the request's reserved bytes
    grpc::ByteBuffer* start = nullptr;
    {
      MutexLock lock(&mu_);
      --pending_;
      if (!broken_) {
        writes_.push_back(std::move(answer));
        if (!writing_) {
          writing_ = true;
          start = &writes_.front();
        }
      }
    }
    if (start != nullptr) {
      StartWrite(start);
    } else {
      MaybeFinish();
    }
  }

  void MaybeFinish() {
    {
      MutexLock lock(&mu_);
      if (finished_ || !reads_done_ || pending_ > 0 || writing_) return;
      finished_ = true;
    }
    Finish(cancelled_.load() ? grpc::Status::CANCELLED : grpc::Status::OK);
  }

  // Constant after construction.
  InferenceService* const service_;
  grpc::CallbackServerContext* const context_;
  const absl::Time deadline_;

  // Only touched by StartRead and OnReadDone, which never overlap.
  grpc::ByteBuffer incoming_;

  std::atomic<bool> cancelled_{false};

  Mutex mu_;
  int pending_ ABSL_GUARDED_BY(mu_) = 0;  // submitted, not yet answered
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  // Answers waiting to be written; the front one is being written.
  std::deque<grpc::ByteBuffer> writes_ ABSL_GUARDED_BY(mu_);
};

// A stream refused at its start (server starting or shutting down).
class RefusedStreamReactor final
    : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  explicit RefusedStreamReactor(const absl::Status& status) {
    Finish(ToGrpcStatus(status));
  }
  void OnDone() override { delete this; }
};

// The code the client gets for a computed request: gRPC answers
// DEADLINE_EXCEEDED or CANCELLED itself when that happened first, whatever
// the server then sends.
absl::StatusCode CodeTheClientSees(const absl::Status& status, absl::Time now,
                                   absl::Time deadline,
                                   const std::function<bool()>& is_cancelled) {
  if (!status.ok()) return status.code();
  if (now >= deadline) return absl::StatusCode::kDeadlineExceeded;
  if (is_cancelled && is_cancelled()) return absl::StatusCode::kCancelled;
  return absl::StatusCode::kOk;
}

}  // namespace

absl::Status InferenceService::CheckAccepting() const {
  if (draining_.load()) {
    return absl::UnavailableError(
        "the server is shutting down and accepts no new calls; retry on "
        "another replica");
  }
  if (!serving_.load()) {
    return absl::UnavailableError(
        "the server is starting and still loading its models; retry shortly");
  }
  return absl::OkStatus();
}

namespace {

// A request's model name and version, before they are looked up: a
// negative version is malformed (INVALID_ARGUMENT), not an unknown one.
absl::Status CheckModelSelector(absl::string_view name, int64_t version) {
  if (name.empty()) {
    return absl::InvalidArgumentError(
        "model_name is empty; ListModels shows the models served");
  }
  if (version < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model_version must be 0 (newest) or a version number; got ", version));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ServableModel> InferenceService::Pin(
    const v1::PredictRequest& request, Rpc rpc, absl::Time received) const {
  absl::Status status = CheckAccepting();
  if (status.ok()) {
    status = CheckModelSelector(request.model_name(), request.model_version());
  }
  if (!status.ok()) {
    metrics_->RequestRefused("", rpc, status.code(), Now() - received);
    return status;
  }
  absl::StatusOr<ServableModel> servable =
      registry_->Get(request.model_name(), request.model_version());
  if (!servable.ok()) {
    const bool known =
        servable.status().code() != absl::StatusCode::kNotFound ||
        registry_->IsServing(request.model_name());
    metrics_->RequestRefused(known ? request.model_name() : "", rpc,
                             servable.status().code(), Now() - received);
  }
  return servable;
}

absl::StatusOr<std::unique_ptr<InferenceTask>> InferenceService::MakeTask(
    const v1::PredictRequest& request, const ServableModel& servable,
    Rpc rpc) const {
  absl::StatusOr<std::vector<SequenceInput>> sequences =
      SequencesFromRequest(request, *servable.model, options_.limits);
  if (!sequences.ok()) return sequences.status();
  const EvalOptions options = EvalOptionsFromRequest(request, options_.limits);
  if (rpc != Rpc::kModelInfer) {
    const int64_t reply_bytes =
        PredictResponseBytes(*servable.model, servable.name, servable.version,
                             request.request_id(), options, *sequences);
    if (absl::Status s = CheckReplyBytes(reply_bytes, options_.max_reply_bytes);
        !s.ok()) {
      return s;
    }
  }
  for (const SequenceInput& s : *sequences) {
    metrics_->SequenceReceived(servable, s.length);
  }
  auto task = std::make_unique<InferenceTask>();
  task->sequences = *std::move(sequences);
  task->options = options;
  task->servable = servable;
  return task;
}

absl::Status InferenceService::Submit(
    const v1::PredictRequest& request, v1::PredictResponse* response, Rpc rpc,
    absl::Time received, absl::Time deadline,
    std::function<bool()> is_cancelled,
    absl::AnyInvocable<void(absl::Status)> finish) {
  absl::StatusOr<ServableModel> servable = Pin(request, rpc, received);
  if (!servable.ok()) return servable.status();
  absl::StatusOr<std::unique_ptr<InferenceTask>> task =
      MakeTask(request, *servable, rpc);
  if (!task.ok()) {
    Refused(rpc, task.status(), received, *servable);
    return task.status();
  }
  (*task)->deadline = deadline;
  (*task)->is_cancelled = is_cancelled;
  (*task)->done =
      [this, servable = *servable, response, rpc, received, deadline,
       is_cancelled, id = request.request_id(), finish = std::move(finish)](
          absl::StatusOr<std::vector<SequenceResult>> results) mutable {
        if (results.ok()) {
          response->set_request_id(id);
          response->set_model_name(servable.name);
          response->set_model_version(servable.version);
          ResultsToResponse(*servable.model, *std::move(results), response);
        }
        metrics_->RequestFinished(
            servable, rpc,
            CodeTheClientSees(results.status(), Now(), deadline, is_cancelled),
            Now() - received, /*started=*/true);
        finish(results.status());
      };
  metrics_->RequestStarted(*servable);
  absl::Status status = scheduler_->Schedule(*std::move(task));
  if (!status.ok()) {
    metrics_->RequestFinished(*servable, rpc, status.code(), Now() - received,
                              /*started=*/true);
  }
  return status;
}

absl::Status InferenceService::WhyNoMessage(
    absl::Time now, const grpc::CallbackServerContext& context,
    const grpc::ByteBuffer& bytes, const absl::Status& status) {
  if (bytes.Valid()) return status;
  if (now >= DeadlineOf(context)) {
    return absl::DeadlineExceededError(
        "the call's deadline passed before its request message arrived");
  }
  if (context.IsCancelled()) {
    return absl::CancelledError(
        "the call was cancelled before its request message arrived");
  }
  return status;
}

absl::StatusOr<RequestAdmission::Reservation> InferenceService::AdmitPredict(
    const grpc::CallbackServerContext& context, const grpc::ByteBuffer& bytes,
    v1::PredictRequest* request, Rpc rpc, absl::Time received) {
  NoteCall();
  WireScan scan;
  absl::StatusOr<RequestAdmission::Reservation> reservation =
      admission_->Admit(bytes, request, &scan);
  if (reservation.ok()) {
    const int kSequencesField = v1::PredictRequest::kSequencesFieldNumber;
    if (absl::Status s =
            CheckSequenceCount(scan.CountOf(kSequencesField), options_.limits);
        !s.ok()) {
      reservation = s;
    }
  }
  if (!reservation.ok()) {
    reservation = WhyNoMessage(Now(), context, bytes, reservation.status());
    Refused(rpc, reservation.status(), received);
  }
  return reservation;
}

void InferenceService::Refused(Rpc rpc, const absl::Status& status,
                               absl::Time received, const std::string& model) {
  metrics_->RequestRefused(model, rpc, status.code(), Now() - received);
}

void InferenceService::Refused(Rpc rpc, const absl::Status& status,
                               absl::Time received,
                               const ServableModel& servable) {
  metrics_->RequestFinished(servable, rpc, status.code(), Now() - received,
                            /*started=*/false);
}

grpc::ServerUnaryReactor* InferenceService::Predict(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* bytes,
    grpc::ByteBuffer* reply) {
  using Call = RawUnaryCall<v1::PredictRequest, v1::PredictResponse>;
  const absl::Time received = Now();
  auto* call = new Call(reply);
  absl::StatusOr<RequestAdmission::Reservation> reservation =
      AdmitPredict(*context, *bytes, &call->request, Rpc::kPredict, received);
  if (!reservation.ok()) {
    call->Reply(reservation.status());
    return call;
  }
  call->reservation = *std::move(reservation);
  absl::Status status = Submit(
      call->request, &call->response, Rpc::kPredict, received,
      DeadlineOf(*context), [context] { return context->IsCancelled(); },
      [call](absl::Status s) { call->Reply(s); });
  if (!status.ok()) call->Reply(status);
  return call;
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>*
InferenceService::PredictStream(grpc::CallbackServerContext* context) {
  NoteCall();
  if (absl::Status s = CheckAccepting(); !s.ok()) {
    metrics_->RequestRefused("", Rpc::kPredictStream, s.code(),
                             absl::ZeroDuration());
    return new RefusedStreamReactor(s);
  }
  return new PredictStreamReactor(this, context);
}

grpc::ServerUnaryReactor* InferenceService::GetModelMetadata(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* bytes,
    grpc::ByteBuffer* reply) {
  using Call =
      RawUnaryCall<v1::GetModelMetadataRequest, v1::GetModelMetadataResponse>;
  const absl::Time received = Now();
  auto* call = new Call(reply);
  absl::StatusOr<RequestAdmission::Reservation> reservation =
      Admit(*context, *bytes, &call->request, Rpc::kGetModelMetadata, received);
  if (!reservation.ok()) {
    call->Reply(reservation.status());
    return call;
  }
  const v1::GetModelMetadataRequest& request = call->request;
  std::string model_label;
  absl::Status status = CheckAccepting();
  if (status.ok()) {
    status = CheckModelSelector(request.model_name(), request.model_version());
  }
  if (status.ok()) {
    absl::StatusOr<ServableModel> servable =
        registry_->Get(request.model_name(), request.model_version());
    status = servable.status();
    if (status.ok()) {
      ModelMetadataToProto(
          *servable, registry_->AvailableVersions(servable->name),
          options_.batching_enabled, options_.limits, &call->response);
      // Counted under the model, not the version: the answer is about it.
      metrics_->ModelRequestFinished(*servable, Rpc::kGetModelMetadata,
                                     status.code(), Now() - received);
      call->Reply(status);
      return call;
    }
    if (registry_->IsServing(request.model_name())) {
      model_label = request.model_name();  // a known model, unknown version
    }
  }
  metrics_->RequestRefused(model_label, Rpc::kGetModelMetadata, status.code(),
                           Now() - received);
  call->Reply(status);
  return call;
}

grpc::ServerUnaryReactor* InferenceService::ListModels(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* bytes,
    grpc::ByteBuffer* reply) {
  using Call = RawUnaryCall<v1::ListModelsRequest, v1::ListModelsResponse>;
  const absl::Time received = Now();
  auto* call = new Call(reply);
  absl::StatusOr<RequestAdmission::Reservation> reservation =
      Admit(*context, *bytes, &call->request, Rpc::kListModels, received);
  if (!reservation.ok()) {
    call->Reply(reservation.status());
    return call;
  }
  // Allowed while starting: operators watch models load through it.
  absl::Status status = absl::OkStatus();
  if (draining_.load()) status = CheckAccepting();
  if (status.ok()) ModelStatusesToProto(registry_->List(), &call->response);
  metrics_->RequestRefused("", Rpc::kListModels, status.code(),
                           Now() - received);
  call->Reply(status);
  return call;
}

}  // namespace biserve
