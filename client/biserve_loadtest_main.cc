// biserve_loadtest: drives a biserve server with sequence requests and
// reports throughput and latency percentiles, in the spirit of ghz and
// perf_analyzer but aware of sequence lengths.
//
// Closed loop (--concurrency N): N requests in flight, each answer sends
// the next. Open loop (--rate R): requests leave at Poisson arrival times
// whatever the answers do, so queueing in the server shows in latency.
// --sweep runs closed loops over several concurrencies, one line each.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "client/biserve_client.h"
#include "client/connection_flags.h"
#include "core/common/process_tuning.h"
#include "grpcpp/client_context.h"
#include "proto/read_file.h"

ABSL_FLAG(std::string, model, "", "Model name (required).");
ABSL_FLAG(int64_t, version, 0, "Model version; 0 for the newest.");
ABSL_FLAG(int32_t, concurrency, 1,
          "Closed loop: requests in flight (one per worker). With --rate: "
          "the number of streams used by --stream.");
ABSL_FLAG(double, rate, 0,
          "Open loop: requests per second, Poisson arrivals. 0: closed loop.");
ABSL_FLAG(double, duration_s, 10, "Measured seconds (after --warmup_s).");
ABSL_FLAG(int64_t, requests, 0,
          "Send exactly this many measured requests (after --warmup_s) "
          "instead of running for --duration_s.");
ABSL_FLAG(double, warmup_s, 1, "Seconds of load before measuring; excluded.");
ABSL_FLAG(std::string, seq_len, "50",
          "Time steps per sequence: a number (50) or a uniform range (1:200).");
ABSL_FLAG(std::string, seq_len_file, "",
          "File of sequence lengths (whitespace separated), drawn at random; "
          "overrides --seq_len.");
ABSL_FLAG(int32_t, batch, 1, "Sequences per request.");
ABSL_FLAG(bool, stream, false, "Send over PredictStream instead of Predict.");
ABSL_FLAG(std::string, sweep, "",
          "Closed-loop concurrencies to run one after another, e.g. "
          "1,8,64; one result line each.");
ABSL_FLAG(std::string, out, "", "Write the JSON report to this file.");
ABSL_FLAG(double, timeout_s, 60, "Deadline of each request, in seconds.");
ABSL_FLAG(uint32_t, seed, 1, "Seed of lengths, values and arrivals.");

namespace biserve {
namespace {

using Clock = std::chrono::steady_clock;

struct Sample {
  double latency_ms;
  int64_t steps;
};

// Results of one run; thread-safe.
class Recorder {
 public:
  // One answer. `measured`: whether the request counts in the report (it
  // was issued after the warm-up); every answer counts in the totals.
  void Record(bool measured, Clock::time_point sent, Clock::time_point done,
              const absl::Status& status, int64_t steps) {
    std::lock_guard<std::mutex> lock(mu_);
    ++total_;
    if (!status.ok()) ++total_errors_;
    if (!measured) return;
    if (status.ok()) {
      samples_.push_back(
          {std::chrono::duration<double, std::milli>(done - sent).count(),
           steps});
    } else {
      ++errors_[std::string(absl::StatusCodeToString(status.code()))];
      if (first_error_.empty()) first_error_ = std::string(status.message());
    }
  }

  std::pair<int64_t, int64_t> totals() const {
    std::lock_guard<std::mutex> lock(mu_);
    return {total_, total_errors_};
  }

  std::vector<Sample> samples() const {
    std::lock_guard<std::mutex> lock(mu_);
    return samples_;
  }
  std::map<std::string, int64_t> errors() const {
    std::lock_guard<std::mutex> lock(mu_);
    return errors_;
  }
  std::string first_error() const {
    std::lock_guard<std::mutex> lock(mu_);
    return first_error_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<Sample> samples_;
  std::map<std::string, int64_t> errors_;
  std::string first_error_;
  int64_t total_ = 0, total_errors_ = 0;
};

struct Report {
  int concurrency = 0;
  double rate = 0;
  double seconds = 0;
  int64_t ok = 0;
  double throughput_rps = 0, steps_per_s = 0;
  double p50 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0, mean = 0;
  std::map<std::string, int64_t> errors;
  double client_cpu_s = 0;  // over the whole run, warm-up included
  double wall_s = 0;        // the whole run, warm-up included
  std::string first_error;
};

double Percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  size_t index = static_cast<size_t>(std::ceil(q * sorted.size()));
  return sorted[std::min(sorted.size() - 1, index == 0 ? 0 : index - 1)];
}

double CpuSeconds() {
  rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
         (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1e-6;
}

// A fixed set of requests drawn once, sent in turn.
struct Workload {
  std::vector<v1::PredictRequest> requests;
  std::vector<int64_t> steps;
};

// Where sequence lengths are drawn from: a list (--seq_len_file), or when
// it is empty the uniform range [low, high] (--seq_len).
struct LengthSource {
  std::vector<int64_t> lengths;
  int64_t low = 0, high = 0;

  int64_t Draw(std::mt19937& rng) const {
    return lengths.empty()
               ? std::uniform_int_distribution<int64_t>(low, high)(rng)
               : lengths[rng() % lengths.size()];
  }
  int64_t Longest() const {
    return lengths.empty() ? high
                           : *std::max_element(lengths.begin(), lengths.end());
  }
};

// The lengths of --seq_len_file: whitespace or comma separated, each >= 1.
absl::StatusOr<LengthSource> LengthsFromFile(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path, "--seq_len_file");
  if (!text.ok()) return text.status();
  LengthSource source;
  for (absl::string_view word :
       absl::StrSplit(*text, absl::ByAnyChar(" \t\r\n,"), absl::SkipEmpty())) {
    int64_t n;
    if (!absl::SimpleAtoi(word, &n) || n < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("--seq_len_file: \"", word, "\" is not a length >= 1"));
    }
    source.lengths.push_back(n);
  }
  if (source.lengths.empty()) {
    return absl::InvalidArgumentError("--seq_len_file holds no lengths");
  }
  return source;
}

// --seq_len_file if given, else --seq_len (N or LOW:HIGH).
absl::StatusOr<LengthSource> LengthsFromFlags() {
  if (!absl::GetFlag(FLAGS_seq_len_file).empty()) {
    return LengthsFromFile(absl::GetFlag(FLAGS_seq_len_file));
  }
  LengthSource source;
  std::vector<std::string> parts =
      absl::StrSplit(absl::GetFlag(FLAGS_seq_len), ':');
  if (parts.size() > 2 || !absl::SimpleAtoi(parts[0], &source.low) ||
      !absl::SimpleAtoi(parts.back(), &source.high) || source.low < 1 ||
      source.high < source.low) {
    return absl::InvalidArgumentError(
        absl::StrCat("--seq_len must be N or LOW:HIGH with 1 <= LOW <= "
                     "HIGH; got \"",
                     absl::GetFlag(FLAGS_seq_len), "\""));
  }
  return source;
}

// A sequence of `length` steps of random input of the kind `input`: token
// ids 0 and 1 (which exist in every vocabulary of two or more), or
// features in [-1, 1).
OwnedSequence RandomSequence(int64_t length, const InputKind& input,
                             std::mt19937& rng) {
  constexpr int kVocabulary = 2;
  std::uniform_real_distribution<float> value(-1, 1);
  OwnedSequence s;
  s.length = length;
  if (input.token_ids) {
    for (int64_t t = 0; t < length; ++t) {
      s.token_ids.push_back(static_cast<int32_t>(rng() % kVocabulary));
    }
  } else {
    s.features.resize(length * input.input_dim);
    for (float& f : s.features) f = value(rng);
  }
  return s;
}

absl::StatusOr<Workload> MakeWorkload(BiserveClient& client) {
  const std::string model = absl::GetFlag(FLAGS_model);
  const int batch = absl::GetFlag(FLAGS_batch);
  absl::StatusOr<ModelMetadata> metadata =
      client.GetModelMetadata(model, absl::GetFlag(FLAGS_version));
  if (!metadata.ok()) return metadata.status();
  absl::StatusOr<LengthSource> lengths = LengthsFromFlags();
  if (!lengths.ok()) return lengths.status();
  if (batch < 1) {
    return absl::InvalidArgumentError("--batch must be at least 1");
  }
  // Up to 256 distinct requests, fewer when they are large: at most about
  // 256 MB of values in all.
  const int64_t values_per_request =
      batch * lengths->Longest() * std::max(1, metadata->input.input_dim);
  const int distinct = static_cast<int>(
      std::clamp<int64_t>((int64_t{64} << 20) / values_per_request, 1, 256));
  std::mt19937 rng(absl::GetFlag(FLAGS_seed));
  Workload workload;
  for (int r = 0; r < distinct; ++r) {
    std::vector<OwnedSequence> sequences;
    int64_t steps = 0;
    for (int i = 0; i < batch; ++i) {
      const int64_t length = lengths->Draw(rng);
      sequences.push_back(RandomSequence(length, metadata->input, rng));
      steps += length;
    }
    workload.requests.push_back(MakePredictRequest(
        model, sequences, {.version = absl::GetFlag(FLAGS_version)}));
    workload.steps.push_back(steps);
  }
  return workload;
}

// One request a sender may send: which of the workload, and whether it
// counts in the report.
struct Ticket {
  int64_t index = 0;
  bool measured = false;
};

// Shared by the senders of one run. Whether a request is sent, and whether
// it is measured, is decided once, before it is sent, so --requests N sends
// exactly N measured requests whatever the concurrency, and no request
// leaves after --duration_s.
class RunState {
 public:
  // A run of `workload` starting now: --warmup_s of warm-up, then
  // `max_requests` measured requests, or when that is 0 --duration_s.
  RunState(const Workload& workload, double warmup_s, double duration_s,
           int64_t max_requests)
      : workload_(workload),
        start_(Clock::now()),
        measure_from_(start_ + Seconds(warmup_s)),
        end_(measure_from_ + Seconds(duration_s)),
        max_requests_(max_requests) {}

  // The request to send at `send_at` (now, or a later arrival time); false
  // when the run is over by then.
  bool Take(Clock::time_point send_at, Ticket* ticket) {
    ticket->measured = send_at >= measure_from_;
    if (ticket->measured && max_requests_ > 0) {
      if (issued_.fetch_add(1) >= max_requests_) return false;
    } else if (ticket->measured && send_at >= end_) {
      return false;
    }
    ticket->index = next_.fetch_add(1) % size();
    return true;
  }

  const v1::PredictRequest& request(const Ticket& t) const {
    return workload_.requests[t.index];
  }
  int64_t steps(const Ticket& t) const { return workload_.steps[t.index]; }
  Clock::time_point start() const { return start_; }
  Clock::time_point measure_from() const { return measure_from_; }
  Recorder& recorder() { return recorder_; }

 private:
  static Clock::duration Seconds(double s) {
    return std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(s));
  }
  int64_t size() const {
    return static_cast<int64_t>(workload_.requests.size());
  }

  const Workload& workload_;
  const Clock::time_point start_;
  const Clock::time_point measure_from_;
  const Clock::time_point end_;  // when max_requests_ is 0
  const int64_t max_requests_;
  std::atomic<int64_t> next_{0};    // requests taken, for the workload index
  std::atomic<int64_t> issued_{0};  // measured tickets asked for
  Recorder recorder_;
};

void SetDeadline(grpc::ClientContext& context) {
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::microseconds(static_cast<int64_t>(
                           absl::GetFlag(FLAGS_timeout_s) * 1e6)));
}

absl::Status ResponseStatus(const v1::PredictResponse& response) {
  if (response.has_error() && response.error().code() != 0) {
    return absl::Status(static_cast<absl::StatusCode>(response.error().code()),
                        response.error().message());
  }
  return absl::OkStatus();
}

// Closed loop, unary: one worker thread per request in flight.
void ClosedUnary(BiserveClient& client, RunState& state) {
  Ticket ticket;
  while (state.Take(Clock::now(), &ticket)) {
    grpc::ClientContext context;
    SetDeadline(context);
    v1::PredictResponse response;
    const auto sent = Clock::now();
    grpc::Status status =
        client.stub().Predict(&context, state.request(ticket), &response);
    state.recorder().Record(ticket.measured, sent, Clock::now(),
                            FromGrpcStatus(status), state.steps(ticket));
  }
}

// Closed loop over one stream: send, wait for the answer, send the next.
void ClosedStream(BiserveClient& client, RunState& state) {
  grpc::ClientContext context;
  auto stream = client.stub().PredictStream(&context);
  Ticket ticket;
  while (state.Take(Clock::now(), &ticket)) {
    const auto sent = Clock::now();
    v1::PredictResponse response;
    if (!stream->Write(state.request(ticket)) || !stream->Read(&response)) {
      state.recorder().Record(ticket.measured, sent, Clock::now(),
                              FromGrpcStatus(stream->Finish()), 0);
      return;
    }
    state.recorder().Record(ticket.measured, sent, Clock::now(),
                            ResponseStatus(response), state.steps(ticket));
  }
  stream->WritesDone();
  v1::PredictResponse rest;
  while (stream->Read(&rest)) {
  }
  stream->Finish();
}

// Requests sent and not yet answered, in the open loop.
class Outstanding {
 public:
  void Add() {
    std::lock_guard<std::mutex> lock(mu_);
    ++count_;
  }
  void Done() {
    std::lock_guard<std::mutex> lock(mu_);
    --count_;
    cv_.notify_all();
  }
  // Waits until every request is answered, or `timeout`.
  void WaitForNone(std::chrono::duration<double> timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return count_ == 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int64_t count_ = 0;
};

// One stream of the open loop: requests written by the sender, answers
// matched by request id on its reader thread.
struct OpenStream {
  struct Sent {
    Clock::time_point at;
    int64_t steps;
    bool measured;
  };
  grpc::ClientContext context;
  std::unique_ptr<
      grpc::ClientReaderWriter<v1::PredictRequest, v1::PredictResponse>>
      rw;
  std::mutex write_mu;
  std::mutex sent_mu;
  std::map<std::string, Sent> sent;  // by request id, guarded by sent_mu
  std::thread reader;
};

// Records the answers of `stream` until it ends.
void ReadAnswers(OpenStream& stream, RunState& state,
                 Outstanding& outstanding) {
  v1::PredictResponse response;
  while (stream.rw->Read(&response)) {
    OpenStream::Sent sent;
    {
      std::lock_guard<std::mutex> lock(stream.sent_mu);
      auto it = stream.sent.find(response.request_id());
      if (it == stream.sent.end()) continue;
      sent = it->second;
      stream.sent.erase(it);
    }
    state.recorder().Record(sent.measured, sent.at, Clock::now(),
                            ResponseStatus(response), sent.steps);
    outstanding.Done();
  }
}

// `count` streams, each with its reader running.
std::vector<std::unique_ptr<OpenStream>> OpenStreams(BiserveClient& client,
                                                     int count, RunState& state,
                                                     Outstanding& outstanding) {
  std::vector<std::unique_ptr<OpenStream>> streams;
  for (int i = 0; i < count; ++i) {
    auto s = std::make_unique<OpenStream>();
    s->rw = client.stub().PredictStream(&s->context);
    s->reader = std::thread(ReadAnswers, std::ref(*s), std::ref(state),
                            std::ref(outstanding));
    streams.push_back(std::move(s));
  }
  return streams;
}

// Writes request `ticket` on `stream` as request id `id`.
void SendOnStream(OpenStream& stream, RunState& state, const Ticket& ticket,
                  int64_t id) {
  v1::PredictRequest request = state.request(ticket);
  request.set_request_id(absl::StrCat(id));
  {
    std::lock_guard<std::mutex> lock(stream.sent_mu);
    stream.sent[request.request_id()] = {Clock::now(), state.steps(ticket),
                                         ticket.measured};
  }
  std::lock_guard<std::mutex> lock(stream.write_mu);
  stream.rw->Write(request);
}

// Sends request `ticket` with gRPC's callback API; the answer is recorded
// when it comes.
void SendAsync(BiserveClient& client, RunState& state, const Ticket& ticket,
               Outstanding& outstanding) {
  auto context = std::make_shared<grpc::ClientContext>();
  SetDeadline(*context);
  auto response = std::make_shared<v1::PredictResponse>();
  const auto sent = Clock::now();
  client.stub().async()->Predict(
      context.get(), &state.request(ticket), response.get(),
      [context, response, sent, ticket, steps = state.steps(ticket), &state,
       &outstanding](grpc::Status status) {
        state.recorder().Record(ticket.measured, sent, Clock::now(),
                                FromGrpcStatus(status), steps);
        outstanding.Done();
      });
}

// Ends the streams once their answers are in.
void CloseStreams(std::vector<std::unique_ptr<OpenStream>>& streams) {
  for (auto& s : streams) {
    {
      std::lock_guard<std::mutex> lock(s->write_mu);
      s->rw->WritesDone();
    }
    s->reader.join();
    s->rw->Finish();
  }
}

// Open loop: one thread sends at Poisson arrival times through gRPC's
// callback API (or round robin over streams); answers are recorded as they
// come. A request whose arrival falls after the run's end is not sent.
void OpenLoop(BiserveClient& client, RunState& state, double rate,
              int streams_count, bool use_stream) {
  std::mt19937 rng(absl::GetFlag(FLAGS_seed) + 17);
  std::exponential_distribution<double> gap(rate);
  Outstanding outstanding;
  std::vector<std::unique_ptr<OpenStream>> streams;
  if (use_stream) {
    streams = OpenStreams(client, streams_count, state, outstanding);
  }
  auto next_time = Clock::now();
  int64_t sent_count = 0;
  Ticket ticket;
  while (true) {
    next_time += std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(gap(rng)));
    if (!state.Take(next_time, &ticket)) break;
    std::this_thread::sleep_until(next_time);
    outstanding.Add();
    if (use_stream) {
      SendOnStream(*streams[sent_count % streams.size()], state, ticket,
                   sent_count);
    } else {
      SendAsync(client, state, ticket, outstanding);
    }
    ++sent_count;
  }
  // Wait for the answers of what was sent (bounded by the call deadline).
  outstanding.WaitForNone(
      std::chrono::duration<double>(absl::GetFlag(FLAGS_timeout_s) + 5));
  CloseStreams(streams);
}

// Closed loop: `concurrency` workers, each sending its next request when
// the last is answered.
void ClosedLoop(BiserveClient& client, RunState& state, int concurrency,
                bool use_stream) {
  std::vector<std::thread> workers;
  for (int i = 0; i < concurrency; ++i) {
    workers.emplace_back([&] {
      if (use_stream) {
        ClosedStream(client, state);
      } else {
        ClosedUnary(client, state);
      }
    });
  }
  for (std::thread& t : workers) t.join();
}

// A line on the terminal (when standard error is one) with what was sent
// so far, every half second until destroyed.
class ProgressLine {
 public:
  explicit ProgressLine(RunState& state) {
    if (isatty(STDERR_FILENO)) {
      thread_ = std::thread([this, run = &state] { Show(*run); });
    }
  }
  ~ProgressLine() {
    done_.store(true);
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Show(RunState& state) {
    while (!done_.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      const auto [total, errors] = state.recorder().totals();
      const double t =
          std::chrono::duration<double>(Clock::now() - state.start()).count();
      std::fprintf(stderr, "\r[%5.1fs] %s%lld sent, %lld errors, %.0f req/s   ",
                   t, Clock::now() < state.measure_from() ? "warm-up " : "",
                   static_cast<long long>(total),
                   static_cast<long long>(errors), t > 0 ? total / t : 0.0);
    }
    std::fprintf(stderr, "\r%70s\r", "");
  }

  std::atomic<bool> done_{false};
  std::thread thread_;
};

// Throughput and latency of the measured answers in `recorder`, over
// `seconds`.
void Summarize(const Recorder& recorder, double seconds, Report& report) {
  report.seconds = seconds;
  std::vector<Sample> samples = recorder.samples();
  std::vector<double> latencies;
  int64_t steps = 0;
  double sum = 0;
  for (const Sample& s : samples) {
    latencies.push_back(s.latency_ms);
    steps += s.steps;
    sum += s.latency_ms;
  }
  std::sort(latencies.begin(), latencies.end());
  report.ok = static_cast<int64_t>(samples.size());
  if (report.seconds > 0) {
    report.throughput_rps = report.ok / report.seconds;
    report.steps_per_s = steps / report.seconds;
  }
  report.p50 = Percentile(latencies, 0.50);
  report.p90 = Percentile(latencies, 0.90);
  report.p99 = Percentile(latencies, 0.99);
  report.p999 = Percentile(latencies, 0.999);
  report.max = latencies.empty() ? 0 : latencies.back();
  report.mean = latencies.empty() ? 0 : sum / latencies.size();
  report.errors = recorder.errors();
  report.first_error = recorder.first_error();
}

Report RunOnce(BiserveClient& client, const Workload& workload, int concurrency,
               double rate) {
  RunState state(workload, absl::GetFlag(FLAGS_warmup_s),
                 absl::GetFlag(FLAGS_duration_s),
                 absl::GetFlag(FLAGS_requests));
  const double cpu_start = CpuSeconds();
  const bool use_stream = absl::GetFlag(FLAGS_stream);
  Clock::time_point finished;
  {
    ProgressLine progress(state);
    if (rate > 0) {
      OpenLoop(client, state, rate, std::max(1, concurrency), use_stream);
    } else {
      ClosedLoop(client, state, concurrency, use_stream);
    }
    finished = Clock::now();
  }
  Report report;
  report.concurrency = concurrency;
  report.rate = rate;
  Summarize(state.recorder(),
            std::chrono::duration<double>(
                finished - std::max(state.measure_from(), state.start()))
                .count(),
            report);
  report.client_cpu_s = CpuSeconds() - cpu_start;
  report.wall_s =
      std::chrono::duration<double>(finished - state.start()).count();
  return report;
}

std::string ReportJson(const Report& r) {
  std::string errors;
  for (const auto& [code, count] : r.errors) {
    absl::StrAppend(&errors, errors.empty() ? "" : ", ", "\"", code,
                    "\": ", count);
  }
  return absl::StrFormat(
      "{\"concurrency\": %d, \"rate\": %g, \"seconds\": %.3f, \"requests\": "
      "%d, \"throughput_rps\": %.3f, \"steps_per_s\": %.1f, \"latency_ms\": "
      "{\"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f, \"p999\": %.3f, \"max\": "
      "%.3f, \"mean\": %.3f}, \"errors\": {%s}, \"client_cpu_s\": %.3f, "
      "\"wall_s\": %.3f}",
      r.concurrency, r.rate, r.seconds, r.ok, r.throughput_rps, r.steps_per_s,
      r.p50, r.p90, r.p99, r.p999, r.max, r.mean, errors, r.client_cpu_s,
      r.wall_s);
}

// The JSON report of one run, or {"sweep": [...]} of several.
std::string ReportsJson(const std::vector<Report>& reports) {
  if (reports.size() == 1) return ReportJson(reports[0]);
  std::string json = "{\"sweep\": [";
  for (size_t i = 0; i < reports.size(); ++i) {
    absl::StrAppend(&json, i ? ",\n  " : "\n  ", ReportJson(reports[i]));
  }
  return json + "\n]}";
}

// The concurrencies to run: --sweep's, else --concurrency (at least 1).
absl::StatusOr<std::vector<int>> ConcurrenciesFromFlags() {
  if (absl::GetFlag(FLAGS_sweep).empty()) {
    return std::vector<int>{std::max(1, absl::GetFlag(FLAGS_concurrency))};
  }
  std::vector<int> concurrencies;
  for (absl::string_view c : absl::StrSplit(absl::GetFlag(FLAGS_sweep), ',')) {
    int n;
    if (!absl::SimpleAtoi(c, &n) || n < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("--sweep wants concurrencies >= 1, got \"", c, "\""));
    }
    concurrencies.push_back(n);
  }
  return concurrencies;
}

void PrintHeader() {
  std::printf("%11s %8s %10s %12s %9s %9s %9s %9s %9s %8s %9s\n", "concurrency",
              "rate", "req/s", "steps/s", "p50_ms", "p90_ms", "p99_ms",
              "p99.9_ms", "max_ms", "errors", "client_cpu");
}

void PrintLine(const Report& r) {
  int64_t errors = 0;
  for (const auto& [code, count] : r.errors) errors += count;
  std::printf(
      "%11d %8g %10.1f %12.0f %9.2f %9.2f %9.2f %9.2f %9.2f %8lld %8.0f%%\n",
      r.concurrency, r.rate, r.throughput_rps, r.steps_per_s, r.p50, r.p90,
      r.p99, r.p999, r.max, static_cast<long long>(errors),
      r.wall_s > 0 ? 100 * r.client_cpu_s / r.wall_s : 0.0);
  for (const auto& [code, count] : r.errors) {
    std::printf("    %s: %lld\n", code.c_str(), static_cast<long long>(count));
  }
  if (!r.first_error.empty()) {
    std::printf("    first error: %s\n", r.first_error.c_str());
  }
  std::fflush(stdout);
}

int Run() {
  if (absl::GetFlag(FLAGS_model).empty()) {
    std::cerr << "biserve_loadtest: --model is required\n";
    return 3;
  }
  ClientOptions options = ClientOptionsFromFlags();
  auto client = BiserveClient::Create(options);
  if (!client.ok()) {
    std::cerr << "biserve_loadtest: " << client.status() << "\n";
    return static_cast<int>(client.status().code());
  }
  // Connected before anything is measured: a connection's set-up (or its
  // first attempt failing and being retried after gRPC's backoff) is not
  // the server's latency. If it does not connect, the first call says why.
  (*client)->channel()->WaitForConnected(std::chrono::system_clock::now() +
                                         std::chrono::seconds(10));
  absl::StatusOr<Workload> workload = MakeWorkload(**client);
  if (!workload.ok()) {
    std::cerr << "biserve_loadtest: " << workload.status() << "\n";
    return static_cast<int>(workload.status().code());
  }
  absl::StatusOr<std::vector<int>> concurrencies = ConcurrenciesFromFlags();
  if (!concurrencies.ok()) {
    std::cerr << "biserve_loadtest: " << concurrencies.status().message()
              << "\n";
    return 3;
  }
  std::printf("# model %s on %s: %d sequence(s) per request, lengths %s, %s\n",
              absl::GetFlag(FLAGS_model).c_str(), options.server.c_str(),
              absl::GetFlag(FLAGS_batch),
              absl::GetFlag(FLAGS_seq_len_file).empty()
                  ? absl::GetFlag(FLAGS_seq_len).c_str()
                  : absl::GetFlag(FLAGS_seq_len_file).c_str(),
              absl::GetFlag(FLAGS_stream) ? "stream" : "unary");
  PrintHeader();
  std::vector<Report> reports;
  for (int concurrency : *concurrencies) {
    reports.push_back(RunOnce(
        **client, *workload, concurrency,
        absl::GetFlag(FLAGS_sweep).empty() ? absl::GetFlag(FLAGS_rate) : 0));
    PrintLine(reports.back());
  }
  if (!absl::GetFlag(FLAGS_out).empty()) {
    std::ofstream(absl::GetFlag(FLAGS_out)) << ReportsJson(reports) << "\n";
  }
  int64_t ok = 0;
  for (const Report& r : reports) ok += r.ok;
  return ok > 0 ? 0 : 14;
}

}  // namespace
}  // namespace biserve

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Load test for biserve: throughput and latency percentiles.\n"
      "  biserve_loadtest --server localhost:8001 --model w2_lstm "
      "--concurrency 8 --seq_len 50 --duration_s 10\n"
      "  biserve_loadtest --model w2_lstm --rate 200 --seq_len 1:200\n"
      "  biserve_loadtest --model w2_lstm --sweep 1,8,64 --out report.json\n"
      "TLS: --tls_roots FILE|system, and for mTLS --tls_client_cert FILE "
      "--tls_client_key FILE; --tls_server_name NAME when connecting by IP.");
  biserve::ListConnectionFlagsInHelp();
  absl::ParseCommandLine(argc, argv);
  biserve::TurnOffMutexDeadlockDetection();
  return biserve::Run();
}
