// /metrics scraped over real HTTP from a running biserve_server after known
// traffic: exact counter values and histogram counts.
#include "server/metrics.h"

#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "biserve/v1/inference.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"
#include "tests/server/http_get.h"
#include "tests/server/server_process.h"

namespace biserve {
namespace {

using ::biserve::testing::HttpGet;
using ::biserve::testing::ServerProcess;

// Sample name with labels (as printed) -> value.
std::map<std::string, double> ParseMetrics(const std::string& text) {
  std::map<std::string, double> samples;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    double value;
    if (space != absl::string_view::npos &&
        absl::SimpleAtod(line.substr(space + 1), &value)) {
      samples[std::string(line.substr(0, space))] = value;
    }
  }
  return samples;
}

v1::PredictRequest Request(const std::string& model,
                           const std::vector<int>& lengths) {
  v1::PredictRequest request;
  request.set_model_name(model);
  for (int length : lengths) {
    v1::Sequence* s = request.add_sequences();
    for (int i = 0; i < length * 8; ++i) s->add_features(0.01f * (i % 13));
  }
  return request;
}

class MetricsTest : public ::testing::Test {
 protected:
  void Start(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"--model_repository=" BISERVE_SOURCE_DIR
                                     "/models"};
    args.insert(args.end(), extra.begin(), extra.end());
    server_ = ServerProcess::Start(args);
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(server_->metrics_port(), 0) << server_->Log();
    channel_ = grpc::CreateChannel(server_->address(),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::InferenceService::NewStub(channel_);
  }
  void TearDown() override {
    stub_.reset();
    channel_.reset();
    if (server_) {
      EXPECT_EQ(server_->Stop(), 0);
    }
  }
  grpc::StatusCode Predict(const v1::PredictRequest& request) {
    grpc::ClientContext context;
    v1::PredictResponse response;
    return stub_->Predict(&context, request, &response).error_code();
  }
  std::map<std::string, double> Scrape() {
    return ParseMetrics(HttpGet(server_->metrics_port(), "/metrics"));
  }

  std::unique_ptr<ServerProcess> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::InferenceService::Stub> stub_;
};

// ServerMetrics in-process, over its own prometheus::Registry.
class ServerMetricsTest : public ::testing::Test {
 protected:
  // A version as the registry hands it out: with its handles.
  ServableModel Loaded(const std::string& model, int64_t version) {
    metrics_.VersionChanged(model, version, VersionState::kAvailable);
    ServableModel servable;
    servable.name = model;
    servable.version = version;
    servable.metrics = metrics_.ForVersion(model, version);
    return servable;
  }
  // Every sample, as /metrics would print it.
  std::map<std::string, double> Samples() {
    return ParseMetrics(
        prometheus::TextSerializer().Serialize(registry_.Collect()));
  }
  // The samples of `family` (name and labels as printed).
  std::map<std::string, double> Of(const std::string& family) {
    std::map<std::string, double> of;
    for (const auto& [sample, value] : Samples()) {
      if (sample.rfind(family + "{", 0) == 0) of[sample] = value;
    }
    return of;
  }

  prometheus::Registry registry_;
  ServerMetrics metrics_{registry_, BuildInfo{}};
};

// One request's calls, in the server's order.
void RecordOneRequest(ServerMetrics& metrics, const ServableModel& servable) {
  metrics.SequenceReceived(servable, 3);
  metrics.RequestStarted(servable);
  metrics.QueueDepthChanged(servable, 1);
  metrics.QueueDepthChanged(servable, -1);
  metrics.TaskDequeued(servable, absl::Milliseconds(1));
  metrics.BatchComputed(servable, 1,
                        EvalStats{.sequences = 1,
                                  .real_steps = 3,
                                  .computed_steps = 3,
                                  .padded_steps = 3},
                        absl::Milliseconds(2));
  metrics.RequestFinished(servable, Rpc::kPredict, absl::StatusCode::kOk,
                          absl::Milliseconds(4), /*started=*/true);
}

TEST_F(ServerMetricsTest, RequestsAreCountedUnderTheirVersionsHandles) {
  const ServableModel servable = Loaded("m", 3);
  EXPECT_TRUE(Of("biserve_requests_total").empty());  // none until used
  RecordOneRequest(metrics_, servable);
  RecordOneRequest(metrics_, servable);
  EXPECT_EQ(
      Of("biserve_requests_total"),
      (std::map<std::string, double>{
          {"biserve_requests_total{code=\"OK\",model=\"m\",rpc=\"Predict\","
           "version=\"3\"}",
           2}}));
  const std::map<std::string, double> samples = Samples();
  EXPECT_EQ(samples.at("biserve_request_duration_seconds_count{model=\"m\","
                       "rpc=\"Predict\"}"),
            2);
  EXPECT_EQ(samples.at("biserve_sequence_length_sum{model=\"m\"}"), 6);
  EXPECT_EQ(samples.at("biserve_real_steps_total{model=\"m\"}"), 6);
  EXPECT_EQ(samples.at("biserve_queue_duration_seconds_count{model=\"m\"}"), 2);
  EXPECT_EQ(samples.at("biserve_inflight_requests{model=\"m\"}"), 0);
  EXPECT_EQ(samples.at("biserve_queue_depth{model=\"m\"}"), 0);
}

TEST_F(ServerMetricsTest, AServableWithoutHandlesRecordsTheSameSeries) {
  prometheus::Registry by_name_registry;
  ServerMetrics by_name(by_name_registry, BuildInfo{});
  by_name.VersionChanged("m", 3, VersionState::kAvailable);
  ServableModel bare;  // made by hand: no handles
  bare.name = "m";
  bare.version = 3;
  RecordOneRequest(by_name, bare);
  RecordOneRequest(metrics_, Loaded("m", 3));
  std::map<std::string, double> expected = Samples();
  std::map<std::string, double> got = ParseMetrics(
      prometheus::TextSerializer().Serialize(by_name_registry.Collect()));
  // Times differ; the series and counts do not.
  for (auto* samples : {&expected, &got}) {
    samples->erase("biserve_model_last_reload_timestamp_seconds{model=\"m\"}");
    samples->erase("biserve_thread_pool_busy_seconds_total");
  }
  EXPECT_EQ(got, expected);
}

TEST_F(ServerMetricsTest, RefusalsAreCountedUnderTheModelOrUnderNone) {
  const ServableModel servable = Loaded("m", 2);
  metrics_.RequestRefused("", Rpc::kModelInfer, absl::StatusCode::kNotFound,
                          absl::Milliseconds(1));
  metrics_.RequestRefused("m", Rpc::kPredict, absl::StatusCode::kNotFound,
                          absl::Milliseconds(1));
  metrics_.ModelRequestFinished(servable, Rpc::kGetModelMetadata,
                                absl::StatusCode::kOk, absl::Milliseconds(1));
  metrics_.RequestFinished(servable, Rpc::kPredictStream,
                           absl::StatusCode::kResourceExhausted,
                           absl::Milliseconds(1), /*started=*/false);
  // A model still loading is counted, and gets no other series yet.
  metrics_.RequestRefused("loading", Rpc::kPredict,
                          absl::StatusCode::kUnavailable,
                          absl::Milliseconds(1));
  EXPECT_EQ(
      Of("biserve_requests_total"),
      (std::map<std::string, double>{
          {"biserve_requests_total{code=\"NOT_FOUND\",model=\"\",rpc="
           "\"ModelInfer\",version=\"\"}",
           1},
          {"biserve_requests_total{code=\"NOT_FOUND\",model=\"m\",rpc="
           "\"Predict\",version=\"\"}",
           1},
          {"biserve_requests_total{code=\"OK\",model=\"m\",rpc="
           "\"GetModelMetadata\",version=\"\"}",
           1},
          {"biserve_requests_total{code=\"RESOURCE_EXHAUSTED\",model=\"m\","
           "rpc=\"PredictStream\",version=\"2\"}",
           1},
          {"biserve_requests_total{code=\"UNAVAILABLE\",model=\"loading\","
           "rpc=\"Predict\",version=\"\"}",
           1}}));
  EXPECT_EQ(Of("biserve_inflight_requests"),
            (std::map<std::string, double>{
                {"biserve_inflight_requests{model=\"m\"}", 0}}));
}

TEST_F(ServerMetricsTest, AnUnloadedVersionLeavesTheLoadedSeries) {
  Loaded("m", 1);
  Loaded("m", 2);
  metrics_.VersionChanged("m", 1, VersionState::kUnloading);
  metrics_.VersionChanged("m", 3, VersionState::kFailed);
  EXPECT_EQ(Of("biserve_model_loaded"),
            (std::map<std::string, double>{
                {"biserve_model_loaded{model=\"m\",version=\"2\"}", 1}}));
  EXPECT_EQ(Samples().at("biserve_model_load_failures_total{model=\"m\"}"), 1);
}

TEST_F(MetricsTest, CountsKnownTrafficExactly) {
  ASSERT_NO_FATAL_FAILURE(Start());
  // One at a time, so each request is its own batch.
  ASSERT_EQ(Predict(Request("example", {4, 7})), grpc::OK);
  ASSERT_EQ(Predict(Request("example", {1})), grpc::OK);
  ASSERT_EQ(Predict(Request("example", {3, 3, 3})), grpc::OK);
  ASSERT_EQ(Predict(Request("nope", {2})), grpc::NOT_FOUND);
  ASSERT_EQ(Predict(Request("nope", {2})), grpc::NOT_FOUND);
  v1::PredictRequest bad = Request("example", {2});
  bad.mutable_sequences(0)->add_features(1);
  ASSERT_EQ(Predict(bad), grpc::INVALID_ARGUMENT);
  {
    grpc::ClientContext context;
    v1::ListModelsResponse list;
    ASSERT_TRUE(stub_->ListModels(&context, {}, &list).ok());
  }

  // A batch's compute metrics are recorded just after its replies go out:
  // the last one may trail the last answer by a moment.
  std::map<std::string, double> m = Scrape();
  for (int i = 0;
       i < 3000 &&
       m["biserve_compute_duration_seconds_count{model=\"example\"}"] < 3;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    m = Scrape();
  }
  auto at = [&](const std::string& sample) {
    auto it = m.find(sample);
    EXPECT_NE(it, m.end()) << sample << " missing";
    return it == m.end() ? -1.0 : it->second;
  };
  EXPECT_EQ(at("biserve_requests_total{code=\"OK\",model=\"example\",rpc="
               "\"Predict\",version=\"1\"}"),
            3);
  EXPECT_EQ(at("biserve_requests_total{code=\"NOT_FOUND\",model=\"\",rpc="
               "\"Predict\",version=\"\"}"),
            2);
  EXPECT_EQ(at("biserve_requests_total{code=\"INVALID_ARGUMENT\",model="
               "\"example\",rpc=\"Predict\",version=\"1\"}"),
            1);
  EXPECT_EQ(at("biserve_requests_total{code=\"OK\",model=\"\",rpc="
               "\"ListModels\",version=\"\"}"),
            1);
  EXPECT_EQ(at("biserve_request_duration_seconds_count{model=\"example\",rpc="
               "\"Predict\"}"),
            4);
  // Six valid sequences: lengths 4, 7, 1, 3, 3, 3.
  EXPECT_EQ(at("biserve_sequence_length_count{model=\"example\"}"), 6);
  EXPECT_EQ(at("biserve_sequence_length_sum{model=\"example\"}"), 21);
  EXPECT_EQ(at("biserve_sequence_length_bucket{model=\"example\",le=\"1\"}"),
            1);
  EXPECT_EQ(at("biserve_batch_size_count{model=\"example\"}"), 3);
  EXPECT_EQ(at("biserve_batch_size_sum{model=\"example\"}"), 6);
  EXPECT_EQ(at("biserve_batch_requests_sum{model=\"example\"}"), 3);
  EXPECT_EQ(at("biserve_batch_steps_sum{model=\"example\"}"), 21);
  EXPECT_EQ(at("biserve_queue_duration_seconds_count{model=\"example\"}"), 3);
  EXPECT_EQ(at("biserve_compute_duration_seconds_count{model=\"example\"}"), 3);
  // No padding: the rows the recurrences processed are the real steps;
  // padded batches would have processed 2 x 7 + 1 + 3 x 3 = 24.
  EXPECT_EQ(at("biserve_real_steps_total{model=\"example\"}"), 21);
  EXPECT_EQ(at("biserve_computed_steps_total{model=\"example\"}"), 21);
  EXPECT_EQ(at("biserve_padded_steps_total{model=\"example\"}"), 24);
  EXPECT_EQ(at("biserve_padding_waste_ratio{model=\"example\"}"), 0);
  EXPECT_EQ(at("biserve_queue_depth{model=\"example\"}"), 0);
  EXPECT_EQ(at("biserve_inflight_requests{model=\"example\"}"), 0);
  EXPECT_EQ(at("biserve_model_loaded{model=\"example\",version=\"1\"}"), 1);
  EXPECT_EQ(at("biserve_model_loaded{model=\"brackets\",version=\"1\"}"), 1);
  EXPECT_EQ(at("biserve_model_load_failures_total{model=\"example\"}"), 0);
  EXPECT_GT(
      at("biserve_model_last_reload_timestamp_seconds{model=\"example\"}"),
      1.7e9);
  EXPECT_GT(at("biserve_thread_pool_busy_seconds_total"), 0);
  EXPECT_GT(at("process_cpu_seconds_total"), 0);
  EXPECT_GT(at("process_resident_memory_bytes"), 1e6);
  EXPECT_GT(at("process_open_fds"), 3);
  EXPECT_GT(at("process_start_time_seconds"), 1.7e9);
  bool build_info = false;
  for (const auto& [name, value] : m) {
    if (name.rfind("biserve_build_info{", 0) == 0 && value == 1) {
      build_info = true;
      // The packed kernel set that computes every product.
      EXPECT_TRUE(absl::StrContains(name, "gemm_kernel=\"avx512\"") ||
                  absl::StrContains(name, "gemm_kernel=\"avx2\"") ||
                  absl::StrContains(name, "gemm_kernel=\"portable\""))
          << name;
    }
  }
  EXPECT_TRUE(build_info);
}

TEST_F(MetricsTest, BatchesMergeRequestsUnderConcurrentLoad) {
  ASSERT_NO_FATAL_FAILURE(
      Start({"--batch_threads=1", "--max_queue_delay_us=20000"}));
  std::vector<std::thread> clients;
  for (int c = 0; c < 16; ++c) {
    clients.emplace_back([&] {
      auto stub = v1::InferenceService::NewStub(channel_);
      for (int r = 0; r < 10; ++r) {
        grpc::ClientContext context;
        v1::PredictResponse response;
        EXPECT_TRUE(
            stub->Predict(&context, Request("example", {30}), &response).ok());
      }
    });
  }
  for (std::thread& t : clients) t.join();
  // The last batch's metrics may trail its replies by a moment.
  std::map<std::string, double> m = Scrape();
  for (int i = 0;
       i < 3000 && m["biserve_batch_requests_sum{model=\"example\"}"] < 160;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    m = Scrape();
  }
  const double batches = m["biserve_batch_requests_count{model=\"example\"}"];
  const double requests = m["biserve_batch_requests_sum{model=\"example\"}"];
  EXPECT_EQ(requests, 160);
  // Fewer batches than requests: some batch held several.
  EXPECT_LT(batches, requests);
  EXPECT_LT(m["biserve_batch_requests_bucket{model=\"example\",le=\"1\"}"],
            batches);
  EXPECT_EQ(m["biserve_padding_waste_ratio{model=\"example\"}"], 0);
}

// A request whose deadline passes, or that its client cancels, while it
// waits behind a running batch is answered with that code and never
// computed: the steps the server computed are exactly those of the others.
TEST_F(MetricsTest, ExpiredAndCancelledRequestsAreNeverComputed) {
  // One thread, and a long W2 sequence (64 inputs, LSTM 128) that keeps it
  // busy for a good fraction of a second while the others queue.
  server_ = ServerProcess::Start({"--model_repository=" BISERVE_SOURCE_DIR
                                  "/bench/models",
                                  "--threads=1", "--batch_threads=1"});
  ASSERT_NE(server_, nullptr);
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(-1);  // The blocker's answer is 40 MB.
  channel_ = grpc::CreateCustomChannel(
      server_->address(), grpc::InsecureChannelCredentials(), arguments);
  stub_ = v1::InferenceService::NewStub(channel_);
  auto w2 = [](int length) {
    v1::PredictRequest request;
    request.set_model_name("w2_lstm");
    v1::Sequence* s = request.add_sequences();
    for (int i = 0; i < length * 64; ++i) s->add_features(0.01f * (i % 7));
    return request;
  };
  auto sample = [&](const std::string& name) {
    return Scrape()["biserve_" + name + "{model=\"w2_lstm\"}"];
  };
  // Polls the server's own metrics until `done`, for at most a minute.
  auto wait_until = [&](auto done) {
    const auto give_up =
        std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!done()) {
      if (std::chrono::steady_clock::now() > give_up) return false;
      // A scrape costs the server some CPU: poll gently.
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return true;
  };
  constexpr int kBlockerSteps = 40000;
  std::thread blocker([&] { EXPECT_EQ(Predict(w2(kBlockerSteps)), grpc::OK); });
  // The blocker left the queue and its batch has not finished: computing.
  ASSERT_TRUE(wait_until([&] {
    return sample("queue_duration_seconds_count") == 1 &&
           sample("compute_duration_seconds_count") == 0;
  }));

  // Cancelled while queued.
  grpc::ClientContext cancelled_context;
  grpc::Status cancelled_status;
  std::thread cancelled([&] {
    v1::PredictResponse response;
    cancelled_status = stub_->Predict(&cancelled_context, w2(11), &response);
  });
  ASSERT_TRUE(wait_until([&] { return sample("queue_depth") == 1; }));
  cancelled_context.TryCancel();
  cancelled.join();
  EXPECT_EQ(cancelled_status.error_code(), grpc::CANCELLED);

  // Expired while queued.
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::milliseconds(10));
    v1::PredictResponse response;
    EXPECT_EQ(stub_->Predict(&context, w2(7), &response).error_code(),
              grpc::DEADLINE_EXCEEDED);
  }
  // Still computing the blocker: the two above were answered before their
  // turn, not after a computation.
  EXPECT_EQ(sample("compute_duration_seconds_count"), 0);
  blocker.join();
  ASSERT_EQ(Predict(w2(3)), grpc::OK);

  // Both were answered uncomputed, whenever the server noticed. (A request
  // whose deadline passed before it even arrived never reaches the queue.)
  // A batch's compute metrics are recorded just after its replies go out,
  // so the last one may trail the last answer: wait for it too.
  ASSERT_TRUE(wait_until([&] {
    return sample("inflight_requests") == 0 && sample("queue_depth") == 0 &&
           sample("compute_duration_seconds_count") >= 2;
  }));
  EXPECT_EQ(sample("compute_duration_seconds_count"), 2);
  EXPECT_EQ(sample("real_steps_total"), kBlockerSteps + 3);
  EXPECT_EQ(sample("computed_steps_total"), kBlockerSteps + 3);
  auto m = Scrape();
  EXPECT_EQ(m["biserve_requests_total{code=\"OK\",model=\"w2_lstm\",rpc="
              "\"Predict\",version=\"1\"}"],
            2);
}

// Every metric a dashboard query names is exported.
TEST_F(MetricsTest, EveryMetricTheDashboardUsesIsExported) {
  std::ifstream in(BISERVE_SOURCE_DIR
                   "/deploy/grafana/dashboards/biserve.json");
  ASSERT_TRUE(in) << "no dashboard";
  std::stringstream text;
  text << in.rdbuf();
  const std::string dashboard = text.str();
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_EQ(Predict(Request("example", {3})), grpc::OK);
  const std::string exposition = HttpGet(server_->metrics_port(), "/metrics");
  std::set<std::string> families;
  for (absl::string_view line : absl::StrSplit(exposition, '\n')) {
    if (absl::StartsWith(line, "# TYPE ")) {
      const std::string rest(line.substr(7));  // "<name> <type>"
      families.insert(rest.substr(0, rest.find(' ')));
    }
  }
  std::regex name("(biserve|process)_[a-z_]+");
  std::set<std::string> used;
  for (auto it = std::sregex_iterator(dashboard.begin(), dashboard.end(), name);
       it != std::sregex_iterator(); ++it) {
    used.insert(it->str());
  }
  ASSERT_FALSE(used.empty());
  for (std::string metric : used) {
    for (const char* suffix : {"_bucket", "_count", "_sum"}) {
      if (absl::EndsWith(metric, suffix) &&
          families.count(metric.substr(0, metric.size() - strlen(suffix)))) {
        metric = metric.substr(0, metric.size() - strlen(suffix));
      }
    }
    EXPECT_TRUE(families.count(metric)) << metric << " is not exported";
  }
}

}  // namespace
}  // namespace biserve
