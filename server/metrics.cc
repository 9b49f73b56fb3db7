#include "server/metrics.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace biserve {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;
using prometheus::Histogram;

// 100 us to 10 s.
Histogram::BucketBoundaries SecondsBuckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
}
Histogram::BucketBoundaries CountBuckets() {
  return {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
}
Histogram::BucketBoundaries StepBuckets() {
  return {1,    10,   20,   50,    100,   200,   500,
          1000, 2000, 5000, 10000, 20000, 50000, 100000};
}

}  // namespace

ServerMetrics::ServerMetrics(prometheus::Registry& registry,
                             const BuildInfo& build)
    : requests_(BuildCounter()
                    .Name("biserve_requests_total")
                    .Help("Requests answered, by model, version, RPC and "
                          "gRPC status code.")
                    .Register(registry)),
      request_duration_(BuildHistogram()
                            .Name("biserve_request_duration_seconds")
                            .Help("Time from receiving a request to answering "
                                  "it, by model and RPC.")
                            .Register(registry)),
      queue_duration_(BuildHistogram()
                          .Name("biserve_queue_duration_seconds")
                          .Help("Time requests waited in the queue before "
                                "their batch started.")
                          .Register(registry)),
      compute_duration_(BuildHistogram()
                            .Name("biserve_compute_duration_seconds")
                            .Help("Time to compute one batch.")
                            .Register(registry)),
      batch_size_(BuildHistogram()
                      .Name("biserve_batch_size")
                      .Help("Sequences per computed batch.")
                      .Register(registry)),
      batch_requests_(BuildHistogram()
                          .Name("biserve_batch_requests")
                          .Help("Requests merged into one computed batch.")
                          .Register(registry)),
      batch_steps_(BuildHistogram()
                       .Name("biserve_batch_steps")
                       .Help("Time steps (sum of sequence lengths) per "
                             "computed batch.")
                       .Register(registry)),
      sequence_length_(BuildHistogram()
                           .Name("biserve_sequence_length")
                           .Help("Time steps per received sequence.")
                           .Register(registry)),
      queue_depth_(BuildGauge()
                       .Name("biserve_queue_depth")
                       .Help("Requests waiting to be computed.")
                       .Register(registry)),
      inflight_(BuildGauge()
                    .Name("biserve_inflight_requests")
                    .Help("Requests received and not yet answered.")
                    .Register(registry)),
      real_steps_(BuildCounter()
                      .Name("biserve_real_steps_total")
                      .Help("Time steps of the sequences computed (their "
                            "lengths added up).")
                      .Register(registry)),
      computed_steps_(BuildCounter()
                          .Name("biserve_computed_steps_total")
                          .Help("Rows the recurrences processed, counted from "
                                "the packed layout that drives them; equals "
                                "the real steps (no padding).")
                          .Register(registry)),
      padded_steps_(BuildCounter()
                        .Name("biserve_padded_steps_total")
                        .Help("Rows a padded batch (sequences x longest) "
                              "would have processed, for comparison.")
                        .Register(registry)),
      padding_waste_ratio_(
          BuildGauge()
              .Name("biserve_padding_waste_ratio")
              .Help("Fraction of the last batch's computed rows that were "
                    "padding: (computed - real) / computed. Zero by design.")
              .Register(registry)),
      model_loaded_(BuildGauge()
                        .Name("biserve_model_loaded")
                        .Help("1 for each model version that is serving.")
                        .Register(registry)),
      load_failures_(BuildCounter()
                         .Name("biserve_model_load_failures_total")
                         .Help("Model versions that failed to load.")
                         .Register(registry)),
      last_reload_(BuildGauge()
                       .Name("biserve_model_last_reload_timestamp_seconds")
                       .Help("When a version of the model last started "
                             "serving, Unix time.")
                       .Register(registry)),
      busy_seconds_(BuildCounter()
                        .Name("biserve_thread_pool_busy_seconds_total")
                        .Help("Time the batch threads spent computing "
                              "batches; divided by biserve_batch_threads, "
                              "how busy they are.")
                        .Register(registry)
                        .Add({})) {
  BuildGauge()
      .Name("biserve_build_info")
      .Help("Always 1; the labels describe the build.")
      .Register(registry)
      .Add({{"version", build.version},
            {"compiler", build.compiler},
            {"gemm_kernel", build.gemm_kernel},
            {"batching", build.batching ? "on" : "off"}})
      .Set(1);
  BuildGauge()
      .Name("biserve_threads")
      .Help("Evaluation threads.")
      .Register(registry)
      .Add({})
      .Set(build.threads);
  BuildGauge()
      .Name("biserve_batch_threads")
      .Help("Batches computed at once (executor threads without batching).")
      .Register(registry)
      .Add({})
      .Set(build.batch_threads);
}

ServerMetrics::ModelMetrics& ServerMetrics::For(const std::string& model) {
  MutexLock lock(&mu_);
  std::unique_ptr<ModelMetrics>& m = models_[model];
  if (m == nullptr) {
    const prometheus::Labels labels = {{"model", model}};
    m = std::make_unique<ModelMetrics>(ModelMetrics{
        &queue_duration_.Add(labels, SecondsBuckets()),
        &compute_duration_.Add(labels, SecondsBuckets()),
        &batch_size_.Add(labels, CountBuckets()),
        &batch_requests_.Add(labels, CountBuckets()),
        &batch_steps_.Add(labels, StepBuckets()),
        &sequence_length_.Add(labels, StepBuckets()), &queue_depth_.Add(labels),
        &inflight_.Add(labels), &real_steps_.Add(labels),
        &computed_steps_.Add(labels), &padded_steps_.Add(labels),
        &padding_waste_ratio_.Add(labels), &last_reload_.Add(labels),
        &load_failures_.Add(labels)});
  }
  return *m;
}

void ServerMetrics::RequestStarted(const std::string& model) {
  For(model).inflight->Increment();
}

void ServerMetrics::RequestFinished(const std::string& model, int64_t version,
                                    const char* rpc, absl::StatusCode code,
                                    absl::Duration elapsed, bool started) {
  if (started) For(model).inflight->Decrement();
  const std::string code_name(absl::StatusCodeToString(code));
  const std::string version_label = version > 0 ? absl::StrCat(version) : "";
  prometheus::Counter* counter;
  prometheus::Histogram* duration;
  {
    MutexLock lock(&mu_);
    prometheus::Counter*& c = request_counters_[absl::StrCat(
        model, "\n", version_label, "\n", rpc, "\n", code_name)];
    if (c == nullptr) {
      c = &requests_.Add({{"model", model},
                          {"version", version_label},
                          {"rpc", rpc},
                          {"code", code_name}});
    }
    counter = c;
    prometheus::Histogram*& d =
        request_durations_[absl::StrCat(model, "\n", rpc)];
    if (d == nullptr) {
      d = &request_duration_.Add({{"model", model}, {"rpc", rpc}},
                                 SecondsBuckets());
    }
    duration = d;
  }
  counter->Increment();
  duration->Observe(absl::ToDoubleSeconds(elapsed));
}

void ServerMetrics::SequenceReceived(const std::string& model, int64_t length) {
  For(model).sequence_length->Observe(static_cast<double>(length));
}

void ServerMetrics::VersionChanged(const std::string& model, int64_t version,
                                   VersionState state) {
  ModelMetrics& m = For(model);
  if (state == VersionState::kFailed) {
    m.load_failures->Increment();
    return;
  }
  MutexLock lock(&mu_);
  auto key = std::make_pair(model, version);
  auto it = loaded_.find(key);
  if (state == VersionState::kAvailable) {
    if (it == loaded_.end()) {
      it =
          loaded_
              .emplace(key,
                       &model_loaded_.Add({{"model", model},
                                           {"version", absl::StrCat(version)}}))
              .first;
    }
    it->second->Set(1);
    m.last_reload->SetToCurrentTime();
  } else if (state == VersionState::kUnloading && it != loaded_.end()) {
    // Gone from the series rather than 0: versions come and go for good.
    model_loaded_.Remove(it->second);
    loaded_.erase(it);
  }
}

void ServerMetrics::TaskDequeued(const ServableModel& model,
                                 absl::Duration waited) {
  For(model.name).queue_duration->Observe(absl::ToDoubleSeconds(waited));
}

void ServerMetrics::BatchComputed(const ServableModel& model, int requests,
                                  const EvalStats& stats,
                                  absl::Duration elapsed) {
  ModelMetrics& m = For(model.name);
  const double seconds = absl::ToDoubleSeconds(elapsed);
  m.compute_duration->Observe(seconds);
  m.batch_size->Observe(static_cast<double>(stats.sequences));
  m.batch_requests->Observe(requests);
  m.batch_steps->Observe(static_cast<double>(stats.real_steps));
  m.real_steps->Increment(static_cast<double>(stats.real_steps));
  m.computed_steps->Increment(static_cast<double>(stats.computed_steps));
  m.padded_steps->Increment(static_cast<double>(stats.padded_steps));
  if (stats.computed_steps > 0) {
    m.padding_waste_ratio->Set(
        static_cast<double>(stats.computed_steps - stats.real_steps) /
        static_cast<double>(stats.computed_steps));
  }
  busy_seconds_.Increment(seconds);
}

void ServerMetrics::QueueDepthChanged(const ServableModel& model, int delta) {
  For(model.name).queue_depth->Increment(delta);
}

}  // namespace biserve
