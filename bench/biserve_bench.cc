// biserve_bench: the evaluation core on the workloads of the performance
// issue, bidirectional, float32, full sequences returned, merge concat.
//
//   build/bin/biserve_bench [--benchmark_filter=W2] [--benchmark_repetitions=5]
//
// Names are BM_Bidirectional/<workload>/threads:<n>, n being the evaluation
// pool's thread count (not Google Benchmark's ->Threads()). Counters:
// seq_per_s, and gflops with FLOPs per sequence
// = 2 directions x T x 2 x G x units x (input + units).
#include <benchmark/benchmark.h>

#include <chrono>
#include <random>
#include <string>
#include <vector>

#include "core/evaluator.h"
#include "core/model.h"
#include "core/thread_pool.h"

namespace biserve {
namespace {

struct Workload {
  const char* name;
  CellType cell;
  int input;
  int units;
  int length;  // 0: lengths uniform in 1..200 with a fixed seed
  int batch;
};

constexpr Workload kWorkloads[] = {
    {"W1", CellType::kLstm, 16, 32, 20, 1},
    {"W1b", CellType::kLstm, 64, 128, 50, 1},
    {"W2", CellType::kLstm, 64, 128, 50, 32},
    {"W3", CellType::kLstm, 256, 256, 100, 64},
    {"W3g", CellType::kGru, 256, 256, 100, 64},
    {"W4", CellType::kLstm, 512, 512, 200, 32},
    {"W5", CellType::kLstm, 256, 256, 0, 64},
};

Tensor Random(std::mt19937& rng, std::vector<int64_t> shape, float scale) {
  std::uniform_real_distribution<float> dist(-scale, scale);
  Tensor t{shape, {}};
  t.values.resize(NumElements(shape));
  for (float& v : t.values) v = dist(rng);
  return t;
}

std::shared_ptr<const Model> MakeModel(const Workload& w) {
  std::mt19937 rng(42);
  const int64_t g = GateCount(w.cell);
  auto weights = [&] {
    RnnWeightsSpec ws;
    ws.kernel = Random(rng, {w.input, g * w.units}, 0.1f);
    ws.recurrent_kernel = Random(rng, {w.units, g * w.units}, 0.1f);
    ws.bias = w.cell == CellType::kGru ? Random(rng, {2, g * w.units}, 0.1f)
                                       : Random(rng, {g * w.units}, 0.1f);
    return ws;
  };
  ModelSpec spec;
  spec.name = w.name;
  spec.input_dim = w.input;
  BidirectionalSpec bidi;
  bidi.layer.cell = w.cell;
  bidi.layer.units = w.units;
  bidi.layer.return_sequences = true;
  bidi.layer.weights = weights();
  bidi.backward_weights = weights();
  spec.layers.push_back(bidi);
  return *Model::Create(spec);
}

void BM_Bidirectional(benchmark::State& state, Workload w, int threads) {
  auto model = MakeModel(w);
  auto pool = *ThreadPool::Create({.num_threads = threads});
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> length(1, 200);
  std::vector<std::vector<float>> features(w.batch);
  std::vector<SequenceInput> batch(w.batch);
  int64_t steps = 0;
  for (int i = 0; i < w.batch; ++i) {
    const int t = w.length > 0 ? w.length : length(rng);
    features[i] = Random(rng, {t, w.input}, 1.0f).values;
    batch[i] = SequenceInput{.length = t, .features = features[i]};
    steps += t;
  }
  // Rates use wall-clock time: with a pool, the benchmark thread's CPU time
  // misses the workers' work.
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    auto results = Evaluate(*model, batch, {}, *pool);
    if (!results.ok()) state.SkipWithError("evaluation failed");
    benchmark::DoNotOptimize(results);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  const double flops_per_step =
      2.0 * 2 * GateCount(w.cell) * w.units * (w.input + w.units);
  const double iterations = static_cast<double>(state.iterations());
  state.counters["seq_per_s"] = w.batch * iterations / seconds;
  state.counters["gflops"] =
      flops_per_step * steps * iterations / seconds / 1e9;
}

}  // namespace
}  // namespace biserve

int main(int argc, char** argv) {
  for (const biserve::Workload& w : biserve::kWorkloads) {
    for (int threads : {1, 2}) {
      benchmark::RegisterBenchmark((std::string("BM_Bidirectional/") + w.name +
                                    "/threads:" + std::to_string(threads))
                                       .c_str(),
                                   biserve::BM_Bidirectional, w, threads)
          ->Unit(benchmark::kMillisecond);
    }
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
