// biserve_bench_onnx: biserve's side of the ONNX side-by-side benchmark
// (bench/peers/onnx_side_by_side.js, issue 17). Loads an .onnx file as the
// server does (LoadAnyModelFile: ImportOnnxFile, then Model::Create; any
// other model file the server takes works too), then evaluates one batch of
// token ids in process:
//
//   build/bin/biserve_bench_onnx --model tagger.onnx --input batch.txt
//       --threads 2 [--min_time 1] [--min_runs 5] [--out output.f32]
//
// `--input` is a text file: "B T", then B lengths, then B x T token ids
// (row-major [B, T]; ids past a sequence's length are ignored). After a
// warm-up, Evaluate() of the whole batch is timed (wall clock) until at
// least --min_time seconds and --min_runs runs have passed (3 runs if that
// takes over --max_time), and one JSON line goes to stdout: the median and
// min ms per batch (wall clock), the median process CPU ms per batch (all
// threads), the runs, and the ms the loading took.
// `--out` writes the model's output of the last run, every sequence's real
// steps in batch order ([sum of lengths, D] float32, little-endian), for the
// output check against ONNX Runtime.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "core/common/process_tuning.h"
#include "core/common/thread_pool.h"
#include "core/eval/evaluator.h"
#include "core/model/model.h"
#include "importers/model_file.h"

ABSL_FLAG(std::string, model, "", "The model file (.onnx, or biserve's).");
ABSL_FLAG(std::string, input, "", "The batch: 'B T', B lengths, B x T ids.");
ABSL_FLAG(int, threads, 1, "Evaluation threads (ThreadPool num_threads).");
ABSL_FLAG(double, min_time, 1.0, "Seconds to time at least.");
ABSL_FLAG(int, min_runs, 5, "Timed runs at least.");
ABSL_FLAG(double, max_time, 6.0, "Stop after this many seconds and 3 runs.");
ABSL_FLAG(std::string, out, "", "Optional: write the outputs here.");

namespace biserve::bench {
namespace {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start)
      .count();
}

// CPU time of the whole process (every thread), ms.
double ProcessCpuMs() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return 1e3 * ts.tv_sec + 1e-6 * ts.tv_nsec;
}

// The median of `values`; 0 when empty.
double Median(std::vector<double> values) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

// A batch of token-id sequences as the --input file gives it.
struct TokenBatch {
  int64_t batch = 0;
  int64_t time = 0;
  std::vector<int64_t> lengths;              // [batch]
  std::vector<std::vector<int32_t>> tokens;  // [batch][lengths[b]]
};

absl::StatusOr<TokenBatch> ReadTokenBatch(const std::string& path) {
  std::ifstream file(path);
  if (!file) return absl::NotFoundError(absl::StrCat(path, ": cannot read"));
  TokenBatch b;
  if (!(file >> b.batch >> b.time) || b.batch <= 0 || b.time <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": expected 'B T' (positive) first"));
  }
  b.lengths.resize(b.batch);
  for (int64_t& length : b.lengths) {
    if (!(file >> length) || length < 1 || length > b.time) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": expected ", b.batch, " lengths in 1..T = ", b.time));
    }
  }
  b.tokens.resize(b.batch);
  for (int64_t i = 0; i < b.batch; ++i) {
    for (int64_t t = 0; t < b.time; ++t) {
      int64_t id = 0;
      if (!(file >> id)) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ": expected B x T = ", b.batch * b.time, " token ids"));
      }
      if (t < b.lengths[i]) b.tokens[i].push_back(static_cast<int32_t>(id));
    }
  }
  return b;
}

absl::Status WriteOutputs(const std::string& path,
                          const std::vector<SequenceResult>& results) {
  std::ofstream file(path, std::ios::binary);
  for (const SequenceResult& r : results) {
    file.write(
        reinterpret_cast<const char*>(r.output.values.data()),
        static_cast<std::streamsize>(r.output.values.size() * sizeof(float)));
  }
  if (!file.flush()) {
    return absl::InternalError(absl::StrCat(path, ": cannot write"));
  }
  return absl::OkStatus();
}

absl::Status Run() {
  const auto load_start = Clock::now();
  absl::StatusOr<std::shared_ptr<const Model>> model =
      LoadAnyModelFile(absl::GetFlag(FLAGS_model));
  if (!model.ok()) return model.status();
  const double load_ms = MsSince(load_start);
  if (!(*model)->takes_token_ids()) {
    return absl::InvalidArgumentError(
        "the model takes features, not token ids; this benchmark feeds ids");
  }
  absl::StatusOr<TokenBatch> tokens =
      ReadTokenBatch(absl::GetFlag(FLAGS_input));
  if (!tokens.ok()) return tokens.status();
  absl::StatusOr<std::unique_ptr<ThreadPool>> pool =
      ThreadPool::Create({.num_threads = absl::GetFlag(FLAGS_threads)});
  if (!pool.ok()) return pool.status();

  std::vector<SequenceInput> batch(tokens->batch);
  for (int64_t i = 0; i < tokens->batch; ++i) {
    batch[i].length = tokens->lengths[i];
    batch[i].token_ids = tokens->tokens[i];
  }
  // Every run validates the batch again, as a request that did not come
  // through the server's codec would be.
  auto evaluate = [&]() { return Evaluate(**model, batch, {}, **pool); };

  if (absl::Status s = WarmUp(**model, **pool); !s.ok()) return s;
  absl::StatusOr<std::vector<SequenceResult>> results = evaluate();
  if (!results.ok()) return results.status();

  const double min_time_ms = 1e3 * absl::GetFlag(FLAGS_min_time);
  const double max_time_ms = 1e3 * absl::GetFlag(FLAGS_max_time);
  const int min_runs = absl::GetFlag(FLAGS_min_runs);
  std::vector<double> times_ms;
  std::vector<double> cpu_ms;
  const auto start = Clock::now();
  while (static_cast<int>(times_ms.size()) < min_runs ||
         MsSince(start) < min_time_ms) {
    const auto run_start = Clock::now();
    const double cpu_start = ProcessCpuMs();
    results = evaluate();
    times_ms.push_back(MsSince(run_start));
    cpu_ms.push_back(ProcessCpuMs() - cpu_start);
    if (!results.ok()) return results.status();
    if (times_ms.size() >= 3 && MsSince(start) >= max_time_ms) break;
  }

  if (const std::string out = absl::GetFlag(FLAGS_out); !out.empty()) {
    if (absl::Status s = WriteOutputs(out, *results); !s.ok()) return s;
  }
  const size_t n = times_ms.size();
  const double min_ms =
      n == 0 ? 0.0 : *std::min_element(times_ms.begin(), times_ms.end());
  const int64_t output_dim =
      results->empty() || (*results)[0].output.shape.empty()
          ? 0
          : (*results)[0].output.shape.back();
  std::printf(
      "{\"ms\": %.6f, \"min_ms\": %.6f, \"cpu_ms\": %.6f, \"runs\": %zu, "
      "\"threads\": %d, \"batch\": %lld, \"time\": %lld, "
      "\"output_dim\": %lld, \"load_ms\": %.3f}\n",
      Median(times_ms), min_ms, Median(cpu_ms), n, absl::GetFlag(FLAGS_threads),
      static_cast<long long>(tokens->batch),
      static_cast<long long>(tokens->time), static_cast<long long>(output_dim),
      load_ms);
  return absl::OkStatus();
}

}  // namespace
}  // namespace biserve::bench

int main(int argc, char** argv) {
  biserve::PrepareProcessForEvaluation();
  absl::ParseCommandLine(argc, argv);
  if (absl::Status s = biserve::bench::Run(); !s.ok()) {
    std::cerr << "biserve_bench_onnx: " << s << "\n";
    return 1;
  }
  return 0;
}
