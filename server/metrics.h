// ServerMetrics: every biserve_* metric, registered once at start-up into
// an injected prometheus::Registry; per-model children are created on a
// model's first use and cached, so the request path only increments and
// observes.
//
// Labels stay low-cardinality: model, version, rpc, code. A request for a
// model the server does not know is counted under model="" (otherwise any
// client could grow the label set without bound).
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/serving/model_registry.h"
#include "core/batching/serving_observer.h"
#include "core/common/mutex.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace biserve {

struct BuildInfo {
  std::string version;
  std::string compiler;
  std::string gemm_kernel;  // OpenBLAS' kernel set, or "Eigen"
  bool batching = true;
  int threads = 0;
  // Batches computed at once (executor threads without batching).
  int batch_threads = 0;
};

class ServerMetrics final : public ServingObserver {
 public:
  // `registry` is not owned and must outlive this object.
  ServerMetrics(prometheus::Registry& registry, const BuildInfo& build);

  // The request path (server/inference_service.cc).
  void RequestStarted(const std::string& model);
  // `model` is "" when the request named no model the server knows;
  // `started` was true if RequestStarted was called for it.
  void RequestFinished(const std::string& model, int64_t version,
                       const char* rpc, absl::StatusCode code,
                       absl::Duration elapsed, bool started);
  void SequenceReceived(const std::string& model, int64_t length);

  // The registry's version changes.
  void VersionChanged(const std::string& model, int64_t version,
                      VersionState state);

  // ServingObserver.
  void TaskDequeued(const ServableModel& model, absl::Duration waited) override;
  void BatchComputed(const ServableModel& model, int requests,
                     const EvalStats& stats, absl::Duration elapsed) override;
  void QueueDepthChanged(const ServableModel& model, int delta) override;

 private:
  // Children of one model, created together.
  struct ModelMetrics {
    prometheus::Histogram* queue_duration;
    prometheus::Histogram* compute_duration;
    prometheus::Histogram* batch_size;
    prometheus::Histogram* batch_requests;
    prometheus::Histogram* batch_steps;
    prometheus::Histogram* sequence_length;
    prometheus::Gauge* queue_depth;
    prometheus::Gauge* inflight;
    prometheus::Counter* real_steps;
    prometheus::Counter* computed_steps;
    prometheus::Counter* padded_steps;
    prometheus::Gauge* padding_waste_ratio;
    prometheus::Gauge* last_reload;
    prometheus::Counter* load_failures;
  };

  ModelMetrics& For(const std::string& model);

  // Families, registered in the constructor; the registry owns them.
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& request_duration_;
  prometheus::Family<prometheus::Histogram>& queue_duration_;
  prometheus::Family<prometheus::Histogram>& compute_duration_;
  prometheus::Family<prometheus::Histogram>& batch_size_;
  prometheus::Family<prometheus::Histogram>& batch_requests_;
  prometheus::Family<prometheus::Histogram>& batch_steps_;
  prometheus::Family<prometheus::Histogram>& sequence_length_;
  prometheus::Family<prometheus::Gauge>& queue_depth_;
  prometheus::Family<prometheus::Gauge>& inflight_;
  prometheus::Family<prometheus::Counter>& real_steps_;
  prometheus::Family<prometheus::Counter>& computed_steps_;
  prometheus::Family<prometheus::Counter>& padded_steps_;
  prometheus::Family<prometheus::Gauge>& padding_waste_ratio_;
  prometheus::Family<prometheus::Gauge>& model_loaded_;
  prometheus::Family<prometheus::Counter>& load_failures_;
  prometheus::Family<prometheus::Gauge>& last_reload_;
  prometheus::Counter& busy_seconds_;

  Mutex mu_;
  std::map<std::string, std::unique_ptr<ModelMetrics>> models_
      ABSL_GUARDED_BY(mu_);
  // (model, version, rpc, code) -> requests counter.
  std::map<std::string, prometheus::Counter*> request_counters_
      ABSL_GUARDED_BY(mu_);
  std::map<std::string, prometheus::Histogram*> request_durations_
      ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, int64_t>, prometheus::Gauge*> loaded_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace biserve
