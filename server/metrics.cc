#include "server/metrics.h"

#include <array>
#include <atomic>
#include <utility>

#include "absl/strings/str_cat.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"

namespace biserve {
namespace {

using prometheus::Counter;
using prometheus::Family;
using prometheus::Gauge;
using prometheus::Histogram;

// absl::StatusCode's values are 0 (OK) to 16 (UNAUTHENTICATED).
constexpr int kCodeCount = 17;

int CodeIndex(absl::StatusCode code) {
  const int index = static_cast<int>(code);
  return index >= 0 && index < kCodeCount
             ? index
             : static_cast<int>(absl::StatusCode::kUnknown);
}

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

// A family's name and help text, as exported.
struct FamilySpec {
  const char* name;
  const char* help;
};

constexpr FamilySpec kRequests = {
    "biserve_requests_total",
    "Requests answered, by model, version, RPC and gRPC status code."};
constexpr FamilySpec kRequestDuration = {
    "biserve_request_duration_seconds",
    "Time from receiving a request to answering it, by model and RPC."};
constexpr FamilySpec kQueueDuration = {
    "biserve_queue_duration_seconds",
    "Time requests waited in the queue before their batch started."};
constexpr FamilySpec kComputeDuration = {"biserve_compute_duration_seconds",
                                         "Time to compute one batch."};
constexpr FamilySpec kBatchSize = {"biserve_batch_size",
                                   "Sequences per computed batch."};
constexpr FamilySpec kBatchRequests = {
    "biserve_batch_requests", "Requests merged into one computed batch."};
constexpr FamilySpec kBatchSteps = {
    "biserve_batch_steps",
    "Time steps (sum of sequence lengths) per computed batch."};
constexpr FamilySpec kSequenceLength = {"biserve_sequence_length",
                                        "Time steps per received sequence."};
constexpr FamilySpec kQueueDepth = {"biserve_queue_depth",
                                    "Requests waiting to be computed."};
constexpr FamilySpec kInflight = {"biserve_inflight_requests",
                                  "Requests received and not yet answered."};
constexpr FamilySpec kRealSteps = {
    "biserve_real_steps_total",
    "Time steps of the sequences computed (their lengths added up)."};
constexpr FamilySpec kComputedSteps = {
    "biserve_computed_steps_total",
    "Rows the recurrences processed, counted from the packed layout that "
    "drives them; equals the real steps (no padding)."};
constexpr FamilySpec kPaddedSteps = {
    "biserve_padded_steps_total",
    "Rows a padded batch (sequences x longest) would have processed, for "
    "comparison."};
constexpr FamilySpec kPaddingWasteRatio = {
    "biserve_padding_waste_ratio",
    "Fraction of the last batch's computed rows that were padding: "
    "(computed - real) / computed. Zero by design."};
constexpr FamilySpec kModelLoaded = {
    "biserve_model_loaded", "1 for each model version that is serving."};
constexpr FamilySpec kLoadFailures = {"biserve_model_load_failures_total",
                                      "Model versions that failed to load."};
constexpr FamilySpec kLastReload = {
    "biserve_model_last_reload_timestamp_seconds",
    "When a version of the model last started serving, Unix time."};
constexpr FamilySpec kBusySeconds = {
    "biserve_thread_pool_busy_seconds_total",
    "Time the batch threads spent computing batches; divided by "
    "biserve_batch_threads, how busy they are."};
constexpr FamilySpec kBuildInfo = {"biserve_build_info",
                                   "Always 1; the labels describe the build."};
constexpr FamilySpec kThreads = {"biserve_threads", "Evaluation threads."};
constexpr FamilySpec kBatchThreads = {
    "biserve_batch_threads",
    "Batches computed at once (executor threads without batching)."};

Family<Counter>& Counters(prometheus::Registry& registry, FamilySpec spec) {
  return prometheus::BuildCounter().Name(spec.name).Help(spec.help).Register(
      registry);
}
Family<Histogram>& Histograms(prometheus::Registry& registry, FamilySpec spec) {
  return prometheus::BuildHistogram().Name(spec.name).Help(spec.help).Register(
      registry);
}
Family<Gauge>& Gauges(prometheus::Registry& registry, FamilySpec spec) {
  return prometheus::BuildGauge().Name(spec.name).Help(spec.help).Register(
      registry);
}

// The gauges that describe the build, set once.
void ExportBuild(prometheus::Registry& registry, const BuildInfo& build) {
  Gauges(registry, kBuildInfo)
      .Add({{"version", build.version},
            {"compiler", build.compiler},
            {"gemm_kernel", build.gemm_kernel},
            {"bf16_kernel", build.bf16_kernel},
            {"default_precision", build.default_precision},
            {"batching", build.batching ? "on" : "off"}})
      .Set(1);
  Gauges(registry, kThreads).Add({}).Set(build.threads);
  Gauges(registry, kBatchThreads).Add({}).Set(build.batch_threads);
}

// One child of a family, created by its first user and then read with one
// atomic load. Threads racing to create it get the same child: Family::Add
// returns the existing one for labels it already has.
template <class Metric>
class LazyChild {
 public:
  template <class Make>
  Metric& Get(const Make& make) const {
    Metric* child = child_.load(std::memory_order_acquire);
    if (child == nullptr) {
      child = &make();
      child_.store(child, std::memory_order_release);
    }
    return *child;
  }

 private:
  mutable std::atomic<Metric*> child_{nullptr};
};

}  // namespace

struct ServerMetrics::Families {
  explicit Families(prometheus::Registry& r)
      : requests(Counters(r, kRequests)),
        request_duration(Histograms(r, kRequestDuration)),
        queue_duration(Histograms(r, kQueueDuration)),
        compute_duration(Histograms(r, kComputeDuration)),
        batch_size(Histograms(r, kBatchSize)),
        batch_requests(Histograms(r, kBatchRequests)),
        batch_steps(Histograms(r, kBatchSteps)),
        sequence_length(Histograms(r, kSequenceLength)),
        queue_depth(Gauges(r, kQueueDepth)),
        inflight(Gauges(r, kInflight)),
        real_steps(Counters(r, kRealSteps)),
        computed_steps(Counters(r, kComputedSteps)),
        padded_steps(Counters(r, kPaddedSteps)),
        padding_waste_ratio(Gauges(r, kPaddingWasteRatio)),
        model_loaded(Gauges(r, kModelLoaded)),
        load_failures(Counters(r, kLoadFailures)),
        last_reload(Gauges(r, kLastReload)),
        busy_seconds(Counters(r, kBusySeconds).Add({})) {}

  Family<Counter>& requests;
  Family<Histogram>& request_duration;
  Family<Histogram>& queue_duration;
  Family<Histogram>& compute_duration;
  Family<Histogram>& batch_size;
  Family<Histogram>& batch_requests;
  Family<Histogram>& batch_steps;
  Family<Histogram>& sequence_length;
  Family<Gauge>& queue_depth;
  Family<Gauge>& inflight;
  Family<Counter>& real_steps;
  Family<Counter>& computed_steps;
  Family<Counter>& padded_steps;
  Family<Gauge>& padding_waste_ratio;
  Family<Gauge>& model_loaded;
  Family<Counter>& load_failures;
  Family<Gauge>& last_reload;
  Counter& busy_seconds;
};

// Children of one model label, created together when the model first
// loads (or fails to).
struct ServerMetrics::ModelChildren {
  ModelChildren(const Families& f, const std::string& model)
      : queue_duration(
            f.queue_duration.Add({{"model", model}}, SecondsBuckets())),
        compute_duration(
            f.compute_duration.Add({{"model", model}}, SecondsBuckets())),
        batch_size(f.batch_size.Add({{"model", model}}, CountBuckets())),
        batch_requests(
            f.batch_requests.Add({{"model", model}}, CountBuckets())),
        batch_steps(f.batch_steps.Add({{"model", model}}, StepBuckets())),
        sequence_length(
            f.sequence_length.Add({{"model", model}}, StepBuckets())),
        queue_depth(f.queue_depth.Add({{"model", model}})),
        inflight(f.inflight.Add({{"model", model}})),
        real_steps(f.real_steps.Add({{"model", model}})),
        computed_steps(f.computed_steps.Add({{"model", model}})),
        padded_steps(f.padded_steps.Add({{"model", model}})),
        padding_waste_ratio(f.padding_waste_ratio.Add({{"model", model}})),
        last_reload(f.last_reload.Add({{"model", model}})),
        load_failures(f.load_failures.Add({{"model", model}})) {}

  Histogram& queue_duration;
  Histogram& compute_duration;
  Histogram& batch_size;
  Histogram& batch_requests;
  Histogram& batch_steps;
  Histogram& sequence_length;
  Gauge& queue_depth;
  Gauge& inflight;
  Counter& real_steps;
  Counter& computed_steps;
  Counter& padded_steps;
  Gauge& padding_waste_ratio;
  Gauge& last_reload;
  Counter& load_failures;
};

// What a finished request records under one (model, version) label pair:
// biserve_requests_total by rpc and code, and the model's
// biserve_request_duration_seconds by rpc (shared by all its pairs).
class ServerMetrics::RequestSeries {
 public:
  using Durations = std::array<LazyChild<Histogram>, kRpcCount>;

  // `durations` must outlive this object.
  RequestSeries(const Families& families, std::string model,
                std::string version, const Durations* durations)
      : families_(families),
        model_(std::move(model)),
        version_(std::move(version)),
        durations_(durations) {}

  void Record(Rpc rpc, absl::StatusCode code, absl::Duration elapsed) const {
    const int r = static_cast<int>(rpc);
    const int c = CodeIndex(code);
    counts_[r][c]
        .Get([&]() -> Counter& {
          return families_.requests.Add(
              {{"model", model_},
               {"version", version_},
               {"rpc", std::string(RpcName(rpc))},
               {"code",
                absl::StatusCodeToString(static_cast<absl::StatusCode>(c))}});
        })
        .Increment();
    (*durations_)[r]
        .Get([&]() -> Histogram& {
          return families_.request_duration.Add(
              {{"model", model_}, {"rpc", std::string(RpcName(rpc))}},
              SecondsBuckets());
        })
        .Observe(absl::ToDoubleSeconds(elapsed));
  }

 private:
  const Families& families_;
  const std::string model_;
  const std::string version_;  // "" for requests no version answered
  const Durations* const durations_;
  std::array<std::array<LazyChild<Counter>, kCodeCount>, kRpcCount> counts_;
};

// One model label's series. `children` (the per-model gauges and
// histograms) exist only once the model has loaded or failed to, as the
// series always have; a model refused while loading only counts requests.
struct ServerMetrics::ModelEntry {
  ModelEntry(const Families& families, const std::string& model)
      : unversioned(families, model, "", &durations) {}

  RequestSeries::Durations durations;
  RequestSeries unversioned;  // version=""
  // Set once under ServerMetrics::mu_, then never changed.
  std::unique_ptr<const ModelChildren> children;
};

// A version's handles: its model's children and its request series.
class ServerMetrics::VersionSeries final : public VersionMetrics {
 public:
  VersionSeries(const Families& families, const ModelEntry& model,
                const std::string& name, int64_t version)
      : model_(model),
        children_(*model.children),
        requests_(families, name, absl::StrCat(version), &model.durations) {}

  const ModelEntry& model() const { return model_; }
  const ModelChildren& children() const { return children_; }
  const RequestSeries& requests() const { return requests_; }

 private:
  const ModelEntry& model_;
  const ModelChildren& children_;
  const RequestSeries requests_;
};

ServerMetrics::ServerMetrics(prometheus::Registry& registry,
                             const BuildInfo& build)
    : families_(std::make_unique<Families>(registry)),
      unknown_(std::make_unique<ModelEntry>(*families_, "")) {
  ExportBuild(registry, build);
}

ServerMetrics::~ServerMetrics() = default;

ServerMetrics::ModelEntry& ServerMetrics::EntryFor(const std::string& model) {
  MutexLock lock(&mu_);
  std::unique_ptr<ModelEntry>& entry = models_[model];
  if (entry == nullptr) entry = std::make_unique<ModelEntry>(*families_, model);
  return *entry;
}

const ServerMetrics::ModelChildren& ServerMetrics::ChildrenFor(
    const std::string& model) {
  ModelEntry& entry = EntryFor(model);
  MutexLock lock(&mu_);
  if (entry.children == nullptr) {
    entry.children = std::make_unique<ModelChildren>(*families_, model);
  }
  return *entry.children;
}

std::shared_ptr<const VersionMetrics> ServerMetrics::ForVersion(
    const std::string& model, int64_t version) {
  ChildrenFor(model);
  ModelEntry& entry = EntryFor(model);
  MutexLock lock(&mu_);
  std::shared_ptr<VersionSeries>& series = versions_[{model, version}];
  if (series == nullptr) {
    series = std::make_shared<VersionSeries>(*families_, entry, model, version);
  }
  return series;
}

const ServerMetrics::VersionSeries& ServerMetrics::SeriesOf(
    const ServableModel& model) {
  if (model.metrics != nullptr) {
    // Every VersionMetrics is made by ForVersion: the one factory.
    return static_cast<const VersionSeries&>(*model.metrics);
  }
  return static_cast<const VersionSeries&>(
      *ForVersion(model.name, model.version));  // kept in versions_
}

void ServerMetrics::SequenceReceived(const ServableModel& model,
                                     int64_t length) {
  SeriesOf(model).children().sequence_length.Observe(
      static_cast<double>(length));
}

void ServerMetrics::RequestStarted(const ServableModel& model) {
  SeriesOf(model).children().inflight.Increment();
}

void ServerMetrics::RequestFinished(const ServableModel& model, Rpc rpc,
                                    absl::StatusCode code,
                                    absl::Duration elapsed, bool started) {
  const VersionSeries& series = SeriesOf(model);
  if (started) series.children().inflight.Decrement();
  series.requests().Record(rpc, code, elapsed);
}

void ServerMetrics::ModelRequestFinished(const ServableModel& model, Rpc rpc,
                                         absl::StatusCode code,
                                         absl::Duration elapsed) {
  SeriesOf(model).model().unversioned.Record(rpc, code, elapsed);
}

void ServerMetrics::RequestRefused(const std::string& model, Rpc rpc,
                                   absl::StatusCode code,
                                   absl::Duration elapsed) {
  const ModelEntry& entry = model.empty() ? *unknown_ : EntryFor(model);
  entry.unversioned.Record(rpc, code, elapsed);
}

void ServerMetrics::VersionChanged(const std::string& model, int64_t version,
                                   VersionState state) {
  const ModelChildren& children = ChildrenFor(model);
  if (state == VersionState::kFailed) {
    children.load_failures.Increment();
    return;
  }
  MutexLock lock(&mu_);
  auto key = std::make_pair(model, version);
  auto it = loaded_.find(key);
  if (state == VersionState::kAvailable) {
    if (it == loaded_.end()) {
      Gauge* loaded = &families_->model_loaded.Add(
          {{"model", model}, {"version", absl::StrCat(version)}});
      it = loaded_.emplace(key, loaded).first;
    }
    it->second->Set(1);
    children.last_reload.SetToCurrentTime();
  } else if (state == VersionState::kUnloading && it != loaded_.end()) {
    // Gone from the series rather than 0: versions come and go for good.
    families_->model_loaded.Remove(it->second);
    loaded_.erase(it);
  }
}

void ServerMetrics::TaskDequeued(const ServableModel& model,
                                 absl::Duration waited) {
  SeriesOf(model).children().queue_duration.Observe(
      absl::ToDoubleSeconds(waited));
}

void ServerMetrics::BatchComputed(const ServableModel& model, int requests,
                                  const EvalStats& stats,
                                  absl::Duration elapsed) {
  const ModelChildren& m = SeriesOf(model).children();
  const double seconds = absl::ToDoubleSeconds(elapsed);
  m.compute_duration.Observe(seconds);
  m.batch_size.Observe(static_cast<double>(stats.sequences));
  m.batch_requests.Observe(requests);
  m.batch_steps.Observe(static_cast<double>(stats.real_steps));
  m.real_steps.Increment(static_cast<double>(stats.real_steps));
  m.computed_steps.Increment(static_cast<double>(stats.computed_steps));
  m.padded_steps.Increment(static_cast<double>(stats.padded_steps));
  if (stats.computed_steps > 0) {
    m.padding_waste_ratio.Set(
        static_cast<double>(stats.computed_steps - stats.real_steps) /
        static_cast<double>(stats.computed_steps));
  }
  families_->busy_seconds.Increment(seconds);
}

void ServerMetrics::QueueDepthChanged(const ServableModel& model, int delta) {
  SeriesOf(model).children().queue_depth.Increment(delta);
}

}  // namespace biserve
