// InferenceService: biserve.v1.InferenceService over gRPC's callback API.
//
// Thin by design: each method admits the request's bytes
// (server/request_admission.h: in-flight bytes, parse budget, then the
// parse), turns the request into core types (proto/inference_codec.h),
// hands the work to the BatchScheduler, and finishes the call from the
// scheduler's thread when the results arrive. No handler blocks. The
// methods take bytes (gRPC's raw callback API) so that nothing is parsed
// before admission.
//
// Thread-safety: gRPC calls the handlers from its threads; StartServing and
// StartDraining may be called from any thread.
#pragma once

#include <atomic>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "biserve/v1/inference.grpc.pb.h"
#include "core/batching/batch_scheduler.h"
#include "core/common/clock.h"
#include "core/serving/model_registry.h"
#include "proto/inference_codec.h"
#include "server/metrics.h"
#include "server/request_admission.h"
#include "server/rpc.h"

namespace biserve {

// Every method of biserve.v1.InferenceService, on raw bytes.
using RawInferenceService = v1::InferenceService::WithRawCallbackMethod_Predict<
    v1::InferenceService::WithRawCallbackMethod_PredictStream<
        v1::InferenceService::WithRawCallbackMethod_GetModelMetadata<
            v1::InferenceService::WithRawCallbackMethod_ListModels<
                v1::InferenceService::Service>>>>;

class InferenceService final : public RawInferenceService {
 public:
  struct Options {
    RequestLimits limits;
    bool batching_enabled = false;  // reported in model metadata
    // --max_message_bytes: a request whose reply would be larger is refused
    // (RESOURCE_EXHAUSTED) before it is computed. 0: no limit.
    int64_t max_reply_bytes = 0;
    // Where request times and deadlines are read; null: the system clock.
    const Clock* clock = nullptr;
  };

  // `registry`, `scheduler`, `metrics` and `admission` are not owned and
  // must outlive the service.
  InferenceService(Options options, const ModelRegistry* registry,
                   BatchScheduler* scheduler, ServerMetrics* metrics,
                   RequestAdmission* admission)
      : options_(options),
        registry_(registry),
        scheduler_(scheduler),
        metrics_(metrics),
        admission_(admission),
        clock_(options.clock != nullptr ? *options.clock : SystemClock()) {}

  // The service's time (Options::clock), for the Open Inference service too.
  absl::Time Now() const { return clock_.Now(); }

  // Until this is called every call is answered UNAVAILABLE ("starting").
  void StartServing() { serving_.store(true); }
  // From now on every new call is answered UNAVAILABLE ("shutting down").
  void StartDraining() { draining_.store(true); }
  // Serving and not draining.
  bool accepting() const { return serving_.load() && !draining_.load(); }
  // UNAVAILABLE while starting or draining.
  absl::Status CheckAccepting() const;
  // What one request may carry (the server's flags).
  const RequestLimits& limits() const { return options_.limits; }
  // The largest reply the server sends (--max_message_bytes; 0: no limit).
  int64_t max_reply_bytes() const { return options_.max_reply_bytes; }

  grpc::ServerUnaryReactor* Predict(grpc::CallbackServerContext* context,
                                    const grpc::ByteBuffer* request,
                                    grpc::ByteBuffer* response) override;
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* PredictStream(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* GetModelMetadata(
      grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
      grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;

  // Admits one PredictRequest's bytes (RequestAdmission) and checks the
  // sequence count read from the wire before the sequences are built.
  // Refusals are counted in the metrics under `rpc`, timed from `received`.
  absl::StatusOr<RequestAdmission::Reservation> AdmitPredict(
      const grpc::CallbackServerContext& context, const grpc::ByteBuffer& bytes,
      v1::PredictRequest* request, Rpc rpc, absl::Time received);

  // Admits any other request's bytes, counting refusals under `rpc`.
  template <class Request>
  absl::StatusOr<RequestAdmission::Reservation> Admit(
      const grpc::CallbackServerContext& context, const grpc::ByteBuffer& bytes,
      Request* request, Rpc rpc, absl::Time received) {
    NoteCall();
    absl::StatusOr<RequestAdmission::Reservation> reservation =
        admission_->Admit(bytes, request);
    if (!reservation.ok()) {
      reservation = WhyNoMessage(Now(), context, bytes, reservation.status());
      Refused(rpc, reservation.status(), received);
    }
    return reservation;
  }

  // A call whose deadline passed, or whose client cancelled, before its
  // message arrived reaches a raw handler with no message: it is counted
  // (and answered) as what happened to it, not as a malformed request.
  static absl::Status WhyNoMessage(absl::Time now,
                                   const grpc::CallbackServerContext& context,
                                   const grpc::ByteBuffer& bytes,
                                   const absl::Status& status);

  // When the last call of either service arrived. On SIGTERM the server
  // answers UNAVAILABLE until calls stop arriving, and only then shuts gRPC
  // down: gRPC cancels (CANCELLED) every call that arrives after that, so a
  // client would not know that it may retry.
  absl::Time last_call() const {
    return absl::FromUnixNanos(last_call_unix_ns_.load());
  }
  void NoteCall() { last_call_unix_ns_.store(absl::GetCurrentTimeNanos()); }

  // Counts a request refused before a model version was pinned: under
  // `model` once it named a model the server serves, else under "".
  void Refused(Rpc rpc, const absl::Status& status, absl::Time received,
               const std::string& model = "");
  // Counts a request for `servable` refused before it was scheduled.
  void Refused(Rpc rpc, const absl::Status& status, absl::Time received,
               const ServableModel& servable);

  // Looks up the model, checks the request and schedules it. OK: `finish`
  // runs exactly once, on a scheduler thread, after `response` is filled
  // (or with the error that prevented it). Otherwise `finish` never runs and
  // the caller answers with the returned status. `request` and `response`
  // must stay alive until `finish` runs. Either way the request is counted
  // in the metrics under `rpc`, timed from `received`. A Predict or
  // PredictStream request whose reply would not fit max_reply_bytes is
  // refused here, before it is computed (ModelInfer's reply is another
  // message: OpenInferenceService checks it).
  absl::Status Submit(const v1::PredictRequest& request,
                      v1::PredictResponse* response, Rpc rpc,
                      absl::Time received, absl::Time deadline,
                      std::function<bool()> is_cancelled,
                      absl::AnyInvocable<void(absl::Status)> finish);

 private:
  // The version `request` names, pinned; a refusal is counted.
  absl::StatusOr<ServableModel> Pin(const v1::PredictRequest& request, Rpc rpc,
                                    absl::Time received) const;
  // The task that computes `request` on `servable`, or why it cannot be
  // computed (bad input, reply too large).
  absl::StatusOr<std::unique_ptr<InferenceTask>> MakeTask(
      const v1::PredictRequest& request, const ServableModel& servable,
      Rpc rpc) const;

  // Immutable after construction.
  const Options options_;
  const ModelRegistry* const registry_;
  BatchScheduler* const scheduler_;
  ServerMetrics* const metrics_;
  RequestAdmission* const admission_;
  const Clock& clock_;

  std::atomic<int64_t> last_call_unix_ns_{0};
  std::atomic<bool> serving_{false};
  std::atomic<bool> draining_{false};
};

}  // namespace biserve
