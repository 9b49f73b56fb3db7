#include "server/inference_service.h"

#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "server/call_deadline.h"
#include "server/grpc_status.h"

namespace biserve {
namespace {

// PredictStream: reads requests one after another and submits each as it
// arrives; answers are written in completion order, one write in flight at
// a time. The stream finishes when the client has half-closed (or the call
// is cancelled), every submitted request has been answered and the last
// write is done. Lock discipline: mu_ guards the bookkeeping below; gRPC
// operations (StartRead, StartWrite, Finish) are started outside it.
class PredictStreamReactor final
    : public grpc::ServerBidiReactor<v1::PredictRequest, v1::PredictResponse> {
 public:
  PredictStreamReactor(InferenceService* service,
                       grpc::CallbackServerContext* context)
      : service_(service),
        context_(context),
        deadline_(DeadlineOf(*context)),
        incoming_(std::make_unique<v1::PredictRequest>()) {
    StartRead(incoming_.get());
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // half-closed by the client, or the call is over
      {
        std::lock_guard<std::mutex> lock(mu_);
        reads_done_ = true;
      }
      MaybeFinish();
      return;
    }
    std::unique_ptr<v1::PredictRequest> request = std::move(incoming_);
    incoming_ = std::make_unique<v1::PredictRequest>();
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++pending_;
    }
    Submit(std::move(request));
    StartRead(incoming_.get());
  }

  void OnWriteDone(bool ok) override {
    v1::PredictResponse* next = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      writes_.pop_front();
      if (!ok) {
        broken_ = true;  // the client is gone: drop what is left
        writes_.clear();
      }
      if (writes_.empty()) {
        writing_ = false;
      } else {
        next = writes_.front().get();
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
  void Submit(std::unique_ptr<v1::PredictRequest> request) {
    auto response = std::make_unique<v1::PredictResponse>();
    const v1::PredictRequest& request_ref = *request;
    v1::PredictResponse* response_ptr = response.get();
    std::string request_id = request->request_id();
    // The finish callback owns the request and response, so both live until
    // the answer is queued for writing.
    auto finish = [this, request = std::move(request),
                   response =
                       std::move(response)](absl::Status status) mutable {
      Answer(std::move(response), request->request_id(), status);
    };
    absl::Status status = service_->Submit(
        request_ref, response_ptr, "PredictStream", absl::Now(), deadline_,
        [this] { return cancelled_.load(); }, std::move(finish));
    if (!status.ok()) {
      Answer(std::make_unique<v1::PredictResponse>(), request_id, status);
    }
  }

  // Queues one answer for writing; `status` not OK turns it into an error
  // answer carrying the request id.
  void Answer(std::unique_ptr<v1::PredictResponse> response,
              const std::string& request_id, const absl::Status& status) {
    if (!status.ok()) {
      response->Clear();
      response->set_request_id(request_id);
      response->mutable_error()->set_code(static_cast<int>(status.code()));
      response->mutable_error()->set_message(std::string(status.message()));
    }
    v1::PredictResponse* start = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      --pending_;
      if (!broken_) {
        writes_.push_back(std::move(response));
        if (!writing_) {
          writing_ = true;
          start = writes_.front().get();
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
      std::lock_guard<std::mutex> lock(mu_);
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
  std::unique_ptr<v1::PredictRequest> incoming_;

  std::atomic<bool> cancelled_{false};

  std::mutex mu_;
  int pending_ ABSL_GUARDED_BY(mu_) = 0;  // submitted, not yet answered
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  // Answers waiting to be written; the front one is being written.
  std::deque<std::unique_ptr<v1::PredictResponse>> writes_ ABSL_GUARDED_BY(mu_);
};

// A stream refused at its start (server starting or shutting down).
class RefusedStreamReactor final
    : public grpc::ServerBidiReactor<v1::PredictRequest, v1::PredictResponse> {
 public:
  explicit RefusedStreamReactor(const absl::Status& status) {
    Finish(ToGrpcStatus(status));
  }
  void OnDone() override { delete this; }
};

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

absl::Status InferenceService::Submit(
    const v1::PredictRequest& request, v1::PredictResponse* response,
    const char* rpc, absl::Time received, absl::Time deadline,
    std::function<bool()> is_cancelled,
    absl::AnyInvocable<void(absl::Status)> finish) {
  std::string model_label;  // set once the registry knows the model
  int64_t version = 0;
  bool started = false;
  absl::Status status = [&]() -> absl::Status {
    if (absl::Status s = CheckAccepting(); !s.ok()) return s;
    if (request.model_name().empty()) {
      return absl::InvalidArgumentError(
          "model_name is empty; ListModels shows the models served");
    }
    if (request.model_version() < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model_version must be 0 (newest) or a version number; got ",
          request.model_version()));
    }
    absl::StatusOr<ServableModel> servable =
        registry_->Get(request.model_name(), request.model_version());
    if (!servable.ok()) {
      if (servable.status().code() != absl::StatusCode::kNotFound ||
          registry_->IsServing(request.model_name())) {
        model_label = request.model_name();  // a known model
      }
      return servable.status();
    }
    model_label = servable->name;
    version = servable->version;
    absl::StatusOr<std::vector<SequenceInput>> sequences =
        SequencesFromRequest(request, *servable->model, options_.limits);
    if (!sequences.ok()) return sequences.status();
    for (const SequenceInput& s : *sequences) {
      metrics_->SequenceReceived(model_label, s.length);
    }

    auto task = std::make_unique<InferenceTask>();
    task->sequences = *std::move(sequences);
    task->options = EvalOptionsFromRequest(request, options_.limits);
    task->deadline = deadline;
    task->is_cancelled = std::move(is_cancelled);
    const Model* model = servable->model.get();  // the task keeps it alive
    task->done =
        [this, model, response, rpc, received, name = servable->name,
         version = servable->version, id = request.request_id(),
         finish = std::move(finish)](
            absl::StatusOr<std::vector<SequenceResult>> results) mutable {
          if (results.ok()) {
            response->set_request_id(id);
            response->set_model_name(name);
            response->set_model_version(version);
            ResultsToResponse(*model, *std::move(results), response);
          }
          metrics_->RequestFinished(name, version, rpc, results.status().code(),
                                    absl::Now() - received, /*started=*/true);
          finish(results.status());
        };
    task->servable = *std::move(servable);
    metrics_->RequestStarted(model_label);
    started = true;
    return scheduler_->Schedule(std::move(task));
  }();
  if (!status.ok()) {
    metrics_->RequestFinished(model_label, version, rpc, status.code(),
                              absl::Now() - received, started);
  }
  return status;
}

grpc::ServerUnaryReactor* InferenceService::Predict(
    grpc::CallbackServerContext* context, const v1::PredictRequest* request,
    v1::PredictResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status status = Submit(
      *request, response, "Predict", absl::Now(), DeadlineOf(*context),
      [context] { return context->IsCancelled(); },
      [reactor](absl::Status s) { reactor->Finish(ToGrpcStatus(s)); });
  if (!status.ok()) reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerBidiReactor<v1::PredictRequest, v1::PredictResponse>*
InferenceService::PredictStream(grpc::CallbackServerContext* context) {
  if (absl::Status s = CheckAccepting(); !s.ok()) {
    return new RefusedStreamReactor(s);
  }
  return new PredictStreamReactor(this, context);
}

grpc::ServerUnaryReactor* InferenceService::GetModelMetadata(
    grpc::CallbackServerContext* context,
    const v1::GetModelMetadataRequest* request,
    v1::GetModelMetadataResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const absl::Time received = absl::Now();
  std::string model_label;
  absl::Status status = CheckAccepting();
  if (status.ok() && request->model_name().empty()) {
    status = absl::InvalidArgumentError(
        "model_name is empty; ListModels shows the models served");
  }
  if (status.ok()) {
    absl::StatusOr<ServableModel> servable =
        registry_->Get(request->model_name(), request->model_version());
    status = servable.status();
    if (!status.ok() && registry_->IsServing(request->model_name())) {
      model_label = request->model_name();  // a known model, unknown version
    }
    if (status.ok()) {
      model_label = servable->name;
      ModelMetadataToProto(
          *servable, registry_->AvailableVersions(servable->name),
          options_.batching_enabled, options_.limits, response);
    }
  }
  metrics_->RequestFinished(model_label, 0, "GetModelMetadata", status.code(),
                            absl::Now() - received, /*started=*/false);
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* InferenceService::ListModels(
    grpc::CallbackServerContext* context, const v1::ListModelsRequest* request,
    v1::ListModelsResponse* response) {
  const absl::Time received = absl::Now();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // Allowed while starting: operators watch models load through it.
  absl::Status status = absl::OkStatus();
  if (draining_.load()) status = CheckAccepting();
  if (status.ok()) ModelStatusesToProto(registry_->List(), response);
  metrics_->RequestFinished("", 0, "ListModels", status.code(),
                            absl::Now() - received, /*started=*/false);
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace biserve
