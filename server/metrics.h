// ServerMetrics: every biserve_* metric, registered once at start-up into
// an injected prometheus::Registry.
//
// A version's children are resolved when it loads (ForVersion, the
// registry's VersionMetrics factory) and travel with each request in its
// ServableModel, so the request path takes no lock, looks nothing up by
// name and builds no label: it increments and observes. The children of
// requests_total, one per (rpc, code) that actually occurs, are created on
// their first request and then found by index.
//
// Labels stay low-cardinality: model, version, rpc, code. A request for a
// model the server does not know is counted under model="" (otherwise any
// client could grow the label set without bound).
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/batching/serving_observer.h"
#include "core/common/mutex.h"
#include "core/model/servable_model.h"
#include "core/model/version_metrics.h"
#include "core/serving/model_registry.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"
#include "server/rpc.h"

namespace biserve {

struct BuildInfo {
  std::string version;
  std::string compiler;
  std::string gemm_kernel;  // PackedGemmIsa(): avx512, avx2 or portable
  // PackedGemmBf16Isa(): avx512_bf16, or none (BF16 models serve in FP32).
  std::string bf16_kernel;
  std::string default_precision;  // --precision: FP32 or BF16
  bool batching = true;
  int threads = 0;
  // Batches computed at once (executor threads without batching).
  int batch_threads = 0;
};

class ServerMetrics final : public ServingObserver {
 public:
  // `registry` is not owned and must outlive this object.
  ServerMetrics(prometheus::Registry& registry, const BuildInfo& build);
  ~ServerMetrics() override;

  // The registry's factory (ModelRegistry::Options::version_metrics): the
  // handles of `model` version `version`, made on its first load and the
  // same after. They point into this object, which must outlive them.
  std::shared_ptr<const VersionMetrics> ForVersion(const std::string& model,
                                                   int64_t version)
      ABSL_LOCKS_EXCLUDED(mu_);

  // --- The request path (server/inference_service.cc) ---
  // `model` comes from the registry, with its handles. (One without, made
  // by hand, is looked up by name: correct, not fast.)
  void SequenceReceived(const ServableModel& model, int64_t length);
  void RequestStarted(const ServableModel& model);
  // Counted under the model and version; `started`: RequestStarted was
  // called for it.
  void RequestFinished(const ServableModel& model, Rpc rpc,
                       absl::StatusCode code, absl::Duration elapsed,
                       bool started);
  // Counted under the model with version "": an answer about the model
  // rather than computed by a version (GetModelMetadata).
  void ModelRequestFinished(const ServableModel& model, Rpc rpc,
                            absl::StatusCode code, absl::Duration elapsed);
  // A request refused before a version was pinned, counted under `model`
  // with version "": "" when it named no model the server knows (no lock),
  // else a known model's name (looked up under a lock: refusals only).
  void RequestRefused(const std::string& model, Rpc rpc, absl::StatusCode code,
                      absl::Duration elapsed);

  // The registry's version changes.
  void VersionChanged(const std::string& model, int64_t version,
                      VersionState state) ABSL_LOCKS_EXCLUDED(mu_);

  // ServingObserver.
  void TaskDequeued(const ServableModel& model, absl::Duration waited) override;
  void BatchComputed(const ServableModel& model, int requests,
                     const EvalStats& stats, absl::Duration elapsed) override;
  void QueueDepthChanged(const ServableModel& model, int delta) override;

 private:
  // Defined in metrics.cc.
  struct Families;       // every family, registered in the constructor
  struct ModelChildren;  // the children labelled by model alone
  class RequestSeries;   // requests_total and request_duration_seconds
  struct ModelEntry;     // one model label's series
  class VersionSeries;   // a version's handles: the VersionMetrics

  // The model's entry, created on first use.
  ModelEntry& EntryFor(const std::string& model) ABSL_LOCKS_EXCLUDED(mu_);
  // The model's children, created on first use.
  const ModelChildren& ChildrenFor(const std::string& model)
      ABSL_LOCKS_EXCLUDED(mu_);
  // `model`'s handles: those it carries, else ForVersion's.
  const VersionSeries& SeriesOf(const ServableModel& model);

  // Immutable after construction; the prometheus registry owns the
  // families and their children.
  const std::unique_ptr<const Families> families_;
  const std::unique_ptr<ModelEntry> unknown_;  // model=""

  Mutex mu_;
  std::map<std::string, std::unique_ptr<ModelEntry>> models_
      ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, int64_t>, std::shared_ptr<VersionSeries>>
      versions_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, int64_t>, prometheus::Gauge*> loaded_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace biserve
