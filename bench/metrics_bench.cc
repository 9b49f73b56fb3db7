// metrics_bench: what the metrics cost one request, on the server's own
// ServerMetrics over a prometheus::Registry (nothing scrapes it).
//
//   build/bin/metrics_bench [--benchmark_repetitions=5]
//
// BM_MetricsPerRequest/threads:<n> records what one Predict of one sequence
// records, in the order the server does: its sequence, the request started,
// queued and dequeued, its batch computed, the request finished. n client
// threads (Google Benchmark's ->Threads()) record for the same model at
// once, as concurrent requests do. Time is per request.
#include <benchmark/benchmark.h>

#include <memory>

#include "absl/time/time.h"
#include "core/eval/evaluator.h"
#include "core/model/servable_model.h"
#include "prometheus/registry.h"
#include "server/metrics.h"

namespace biserve::bench {
namespace {

struct Served {
  Served() : metrics(registry, BuildInfo{}) {
    metrics.VersionChanged("example", 1, VersionState::kAvailable);
    servable.name = "example";
    servable.version = 1;
    servable.metrics = metrics.ForVersion("example", 1);  // as the registry
  }
  prometheus::Registry registry;
  ServerMetrics metrics;
  ServableModel servable;
};

void BM_MetricsPerRequest(benchmark::State& state) {
  static Served* served = new Served();  // shared by the threads
  ServerMetrics& metrics = served->metrics;
  const ServableModel& servable = served->servable;
  const EvalStats stats{.sequences = 1,
                        .real_steps = 20,
                        .computed_steps = 20,
                        .padded_steps = 20};
  for (auto _ : state) {
    metrics.SequenceReceived(servable, 20);
    metrics.RequestStarted(servable);
    metrics.QueueDepthChanged(servable, 1);
    metrics.QueueDepthChanged(servable, -1);
    metrics.TaskDequeued(servable, absl::Microseconds(50));
    metrics.BatchComputed(servable, 1, stats, absl::Microseconds(300));
    metrics.RequestFinished(servable, Rpc::kPredict, absl::StatusCode::kOk,
                            absl::Microseconds(400), /*started=*/true);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MetricsPerRequest)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace
}  // namespace biserve::bench

BENCHMARK_MAIN();
