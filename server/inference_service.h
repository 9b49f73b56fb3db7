// InferenceService: biserve.v1.InferenceService over gRPC's callback API.
//
// Thin by design: each method turns the request into core types (through
// proto/inference_codec.h), hands the work to the BatchScheduler, and
// finishes the call from the scheduler's thread when the results arrive. No
// handler blocks.
//
// Thread-safety: gRPC calls the handlers from its threads; StartServing and
// StartDraining may be called from any thread.
#pragma once

#include <atomic>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "biserve/v1/inference.grpc.pb.h"
#include "core/batch_scheduler.h"
#include "core/model_registry.h"
#include "proto/inference_codec.h"
#include "server/metrics.h"

namespace biserve {

class InferenceService final : public v1::InferenceService::CallbackService {
 public:
  struct Options {
    RequestLimits limits;
    bool batching_enabled = false;  // reported in model metadata
  };

  // `registry`, `scheduler` and `metrics` are not owned and must outlive
  // the service.
  InferenceService(Options options, const ModelRegistry* registry,
                   BatchScheduler* scheduler, ServerMetrics* metrics)
      : options_(options),
        registry_(registry),
        scheduler_(scheduler),
        metrics_(metrics) {}

  // Until this is called every call is answered UNAVAILABLE ("starting").
  void StartServing() { serving_.store(true); }
  // From now on every new call is answered UNAVAILABLE ("shutting down").
  void StartDraining() { draining_.store(true); }
  // Serving and not draining.
  bool accepting() const { return serving_.load() && !draining_.load(); }

  grpc::ServerUnaryReactor* Predict(grpc::CallbackServerContext* context,
                                    const v1::PredictRequest* request,
                                    v1::PredictResponse* response) override;
  grpc::ServerBidiReactor<v1::PredictRequest, v1::PredictResponse>*
  PredictStream(grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* GetModelMetadata(
      grpc::CallbackServerContext* context,
      const v1::GetModelMetadataRequest* request,
      v1::GetModelMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ListModels(
      grpc::CallbackServerContext* context,
      const v1::ListModelsRequest* request,
      v1::ListModelsResponse* response) override;

  // Looks up the model, checks the request and schedules it. OK: `finish`
  // runs exactly once, on a scheduler thread, after `response` is filled
  // (or with the error that prevented it). Otherwise `finish` never runs and
  // the caller answers with the returned status. `request` and `response`
  // must stay alive until `finish` runs. Either way the request is counted
  // in the metrics under `rpc`, timed from `received`.
  absl::Status Submit(const v1::PredictRequest& request,
                      v1::PredictResponse* response, const char* rpc,
                      absl::Time received, absl::Time deadline,
                      std::function<bool()> is_cancelled,
                      absl::AnyInvocable<void(absl::Status)> finish);

 private:
  // UNAVAILABLE while starting or draining.
  absl::Status CheckAccepting() const;

  // Immutable after construction.
  const Options options_;
  const ModelRegistry* const registry_;
  BatchScheduler* const scheduler_;
  ServerMetrics* const metrics_;

  std::atomic<bool> serving_{false};
  std::atomic<bool> draining_{false};
};

}  // namespace biserve
