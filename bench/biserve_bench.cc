// biserve_bench: the evaluation core on the workloads of bench/workloads.h.
//
//   build/bin/biserve_bench [--benchmark_filter=W2] [--benchmark_repetitions=5]
//
// Names are BM_Bidirectional/<workload>/threads:<n>, n being the evaluation
// pool's thread count (not Google Benchmark's ->Threads()), and
// BM_GemmPeak/threads:<n>: n concurrent 1024^3 float GEMMs through the
// packed kernels the core uses. Counters (from wall time): seq_per_s, gflops
// (FLOPs per sequence = 2 directions x T x 2 x G x units x (input + units))
// and peak_pct, the workload's gflops as a percentage of the GEMM peak
// measured at start-up for the same thread count (the better of the packed
// kernels and OpenBLAS). BM_PackedGemm/<m>x<k>x<n>
// times the packed kernel alone, one thread, on the products W3 and W4 make
// (a step's h * U, a direction's input projection).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/workloads.h"
#include "core/common/eigen_types.h"
#include "core/common/process_tuning.h"
#include "core/common/thread_pool.h"
#include "core/eval/evaluator.h"
#include "core/kernels/packed_gemm.h"
#include "core/kernels/packed_weights.h"
#include "core/kernels/precision.h"
#include "core/model/model.h"
#include "proto/model_codec.h"

namespace biserve::bench {
namespace {

constexpr int kGemmSize = 1024;

// Runs `threads` GEMMs of kGemmSize^3 at once on a pool; returns GFLOP/s.
// Through biserve's packed kernels (`packed`), or Eigen and its BLAS.
double GemmRound(ThreadPool& pool, int threads, bool packed) {
  static const RowMatrix a = RowMatrix::Random(kGemmSize, kGemmSize);
  static const RowMatrix b = RowMatrix::Random(kGemmSize, kGemmSize);
  static const PackedMatrix packed_b(b);
  std::vector<RowMatrix> c(threads, RowMatrix(kGemmSize, kGemmSize));
  const auto start = std::chrono::steady_clock::now();
  pool.ParallelFor(threads, [&](int i) {
    if (packed) {
      PackedGemm(a.data(), kGemmSize, kGemmSize, packed_b, c[i].data(),
                 kGemmSize);
    } else {
      c[i].noalias() = a * b;
    }
  });
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  benchmark::DoNotOptimize(c);
  return threads * 2.0 * kGemmSize * kGemmSize * kGemmSize / seconds / 1e9;
}

// The median GFLOP/s of a few rounds through the packed kernels (`packed`)
// or the BLAS, after one warm-up.
double MedianGemm(ThreadPool& pool, int threads, bool packed) {
  GemmRound(pool, threads, packed);
  std::vector<double> rounds;
  for (int i = 0; i < 7; ++i)
    rounds.push_back(GemmRound(pool, threads, packed));
  std::sort(rounds.begin(), rounds.end());
  return rounds[rounds.size() / 2];
}

// The machine's fp32 GEMM peak: the better of the packed kernels and the
// BLAS, both printed.
double GemmPeak(int threads) {
  auto pool = *ThreadPool::Create({.num_threads = threads});
  const double packed = MedianGemm(*pool, threads, true);
  const double blas = MedianGemm(*pool, threads, false);
  std::fprintf(stderr,
               "GEMM 1024^3, %d thread(s): packed %.1f GFLOP/s, BLAS %.1f\n",
               threads, packed, blas);
  return std::max(packed, blas);
}

void BM_GemmPeak(benchmark::State& state, int threads) {
  auto pool = *ThreadPool::Create({.num_threads = threads});
  double sum = 0;
  for (auto _ : state) sum += GemmRound(*pool, threads, /*packed=*/true);
  state.counters["gflops"] = sum / state.iterations();
}

// Marks a benchmark of a precision this CPU cannot run (bf16 without
// AVX512_BF16) as skipped, with the reason.
void SkipUnservable(benchmark::State& state, Precision precision) {
  // Google Benchmark may keep the pointer: one string per process.
  static const std::string reason =
      PrecisionFallbackReason(precision, ServablePrecision(precision));
  state.SkipWithError(reason.c_str());
}

// c = a * b on the packed kernel of `precision`, [m, k] x [k, n], one
// thread.
void BM_PackedGemm(benchmark::State& state, int m, int k, int n,
                   Precision precision) {
  if (ServablePrecision(precision) != precision) {
    SkipUnservable(state, precision);
    return;
  }
  const RowMatrix a = RowMatrix::Random(m, k);
  const PackedWeights b(RowMatrix::Random(k, n), RowVector(), precision);
  RowMatrix c(m, b.padded_cols());
  for (auto _ : state) {
    PackedGemm(a.data(), k, m, b, c.data(), c.cols());
    benchmark::DoNotOptimize(c.data());
  }
  // Per iteration, divided by the benchmark's CPU time (one thread).
  state.counters["gflops"] = benchmark::Counter(
      2e-9 * m * k * n, benchmark::Counter::kIsIterationInvariantRate);
}

// One workload's batch, evaluated in `precision` (its bf16 run beside the
// fp32 one); peak_pct is against the machine's fp32 GEMM peak either way.
void BM_Bidirectional(benchmark::State& state, const Workload& w, int threads,
                      Precision precision, double peak_gflops) {
  auto model = *Model::Create(ModelSpecFromProto(WorkloadModel(w)), precision);
  if (model->precision() != precision) {
    SkipUnservable(state, precision);
    return;
  }
  auto pool = *ThreadPool::Create({.num_threads = threads});
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> value(-1.0f, 1.0f);
  const std::vector<int64_t> lengths = WorkloadLengths(w);
  std::vector<std::vector<float>> features(w.batch);
  std::vector<SequenceInput> batch(w.batch);
  int64_t steps = 0;
  for (int i = 0; i < w.batch; ++i) {
    features[i].resize(lengths[i] * w.input);
    for (float& v : features[i]) v = value(rng);
    batch[i] = SequenceInput{.length = lengths[i], .features = features[i]};
    steps += lengths[i];
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
  const double iterations = static_cast<double>(state.iterations());
  const double gflops = FlopsPerStep(w) * steps * iterations / seconds / 1e9;
  state.counters["seq_per_s"] = w.batch * iterations / seconds;
  state.counters["gflops"] = gflops;
  state.counters["peak_pct"] = 100.0 * gflops / peak_gflops;
}

}  // namespace
}  // namespace biserve::bench

int main(int argc, char** argv) {
  using namespace biserve::bench;
  biserve::PrepareProcessForEvaluation();
  benchmark::Initialize(&argc, argv);
  std::fprintf(stderr, "GEMM kernels: biserve's packed %s (BLAS: %s)\n",
               biserve::PackedGemmIsa(), biserve::GemmKernelName());
  benchmark::AddCustomContext("gemm_kernels", biserve::PackedGemmIsa());
  benchmark::AddCustomContext("blas_kernels", biserve::GemmKernelName());
  benchmark::AddCustomContext("bf16_kernels", biserve::PackedGemmBf16Isa());
  std::map<int, double> peak;
  for (int threads : {1, 2}) {
    peak[threads] = GemmPeak(threads);
    std::fprintf(stderr, "GEMM peak, %d thread(s): %.1f GFLOP/s\n", threads,
                 peak[threads]);
  }
  for (int threads : {1, 2}) {
    benchmark::RegisterBenchmark(
        ("BM_GemmPeak/threads:" + std::to_string(threads)).c_str(), BM_GemmPeak,
        threads)
        ->Unit(benchmark::kMillisecond);
  }
  // BM_Bidirectional/<workload>/threads:<n>, then the same in bf16 as
  // .../bf16: one run compares them.
  for (const Workload& w : Workloads()) {
    for (int threads : {1, 2}) {
      const std::string name =
          absl::StrCat("BM_Bidirectional/", w.name, "/threads:", threads);
      benchmark::RegisterBenchmark(name.c_str(), BM_Bidirectional, w, threads,
                                   biserve::Precision::kFp32, peak[threads])
          ->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark((name + "/bf16").c_str(), BM_Bidirectional,
                                   w, threads, biserve::Precision::kBf16,
                                   peak[threads])
          ->Unit(benchmark::kMillisecond);
    }
  }
  // W3's recurrent step and input projection, then W4's.
  for (const auto& [m, k, n] :
       {std::tuple{64, 256, 1024}, std::tuple{6400, 256, 1024},
        std::tuple{32, 512, 2048}, std::tuple{6400, 512, 2048}}) {
    const std::string name = absl::StrCat("BM_PackedGemm/", m, "x", k, "x", n);
    benchmark::RegisterBenchmark(name.c_str(), BM_PackedGemm, m, k, n,
                                 biserve::Precision::kFp32)
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark((name + "/bf16").c_str(), BM_PackedGemm, m, k,
                                 n, biserve::Precision::kBf16)
        ->Unit(benchmark::kMillisecond);
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
