// The server's request path under hostile or unlucky conditions, end to end:
// a real biserve_server process and real gRPC clients over loopback.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "biserve/v1/inference.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "inference/grpc_predict_v2.grpc.pb.h"
#include "tests/server/http_get.h"
#include "tests/server/server_process.h"
#include "tests/support/sanitized.h"

namespace biserve {
namespace {

using ::biserve::testing::HttpGet;
using ::biserve::testing::ServerProcess;
using ::testing::HasSubstr;

std::shared_ptr<grpc::Channel> Channel(const ServerProcess& server) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  return grpc::CreateCustomChannel(server.address(),
                                   grpc::InsecureChannelCredentials(), args);
}

v1::PredictRequest FeatureRequest(const std::string& model, int input_dim,
                                  int sequences, int length) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> value(-1, 1);
  v1::PredictRequest request;
  request.set_model_name(model);
  for (int s = 0; s < sequences; ++s) {
    v1::Sequence* sequence = request.add_sequences();
    sequence->set_length(length);
    for (int i = 0; i < length * input_dim; ++i) {
      sequence->add_features(value(rng));
    }
  }
  return request;
}

// Calls `method` with `payload` sent as it is (no serialization): how a
// client that sends broken or hostile bytes calls.
grpc::Status RawCall(const std::shared_ptr<grpc::Channel>& channel,
                     const std::string& method, const std::string& payload) {
  grpc::GenericStub generic(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(60));
  grpc::Slice slice(payload);
  grpc::ByteBuffer bytes(&slice, 1);
  grpc::ByteBuffer reply;
  std::mutex mu;
  std::condition_variable done_cv;
  bool done = false;
  grpc::Status status;
  generic.UnaryCall(&context, method, grpc::StubOptions(), &bytes, &reply,
                    [&](grpc::Status s) {
                      std::lock_guard<std::mutex> lock(mu);
                      status = s;
                      done = true;
                      done_cv.notify_all();
                    });
  std::unique_lock<std::mutex> lock(mu);
  done_cv.wait(lock, [&] { return done; });
  return status;
}

// The value of one sample of the server's /metrics (0 if absent), e.g.
// Sample(text, "biserve_requests_total", {{"rpc","Predict"},{"code","OK"}}),
// summed over the label values not named.
double Sample(const std::string& text, const std::string& name,
              const std::map<std::string, std::string>& labels) {
  double sum = 0;
  const std::regex line("^" + name + "\\{([^}]*)\\} ([^ \\n]+)$",
                        std::regex::multiline);
  for (auto it = std::sregex_iterator(text.begin(), text.end(), line);
       it != std::sregex_iterator(); ++it) {
    const std::string label_text = (*it)[1];
    bool match = true;
    for (const auto& [key, value] : labels) {
      match &= label_text.find(key + "=\"" + value + "\"") != std::string::npos;
    }
    double v = 0;
    if (match && absl::SimpleAtod((*it)[2].str(), &v)) sum += v;
  }
  return sum;
}

// SIGTERM while clients keep calling: once the server has taken the
// signal, every call is refused with UNAVAILABLE (so a client knows it may
// retry on another replica), none is CANCELLED, and every call before it is
// answered. gRPC cancels calls that arrive once its shutdown has begun, so
// the server must answer UNAVAILABLE itself until calls stop.
TEST(RequestPathTest, CallsAfterSigtermGetUnavailableAndNeverCancelled) {
  auto server = ServerProcess::Start(
      {"--model_repository=" BISERVE_SOURCE_DIR "/models"});
  ASSERT_NE(server, nullptr);
  v1::PredictRequest request = FeatureRequest("example", 8, 1, 20);
  std::atomic<bool> stop{false};
  std::atomic<int64_t> signalled_at_ns{0};
  std::mutex mu;
  std::map<std::string, int> after;  // code name of each call after SIGTERM
  int ok_before = 0;
  int64_t first_refusal_done_ns = 0;  // when the first refusal came back
  std::atomic<int> computed_after_refusal{0};
  std::vector<std::string> unexpected;
  std::vector<std::thread> clients;
  for (int c = 0; c < 6; ++c) {
    clients.emplace_back([&] {
      auto stub = v1::InferenceService::NewStub(Channel(*server));
      // Bounded: at most 20,000 calls per client, 3 s after the signal.
      for (int i = 0; i < 20000 && !stop.load(); ++i) {
        const int64_t started = absl::GetCurrentTimeNanos();
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() +
                             std::chrono::seconds(10));
        v1::PredictResponse response;
        grpc::Status status = stub->Predict(&context, request, &response);
        std::lock_guard<std::mutex> lock(mu);
        if (status.error_code() == grpc::UNAVAILABLE &&
            first_refusal_done_ns == 0) {
          first_refusal_done_ns = absl::GetCurrentTimeNanos();
        }
        if (status.ok() && first_refusal_done_ns != 0 &&
            started > first_refusal_done_ns) {
          ++computed_after_refusal;
        }
        const int64_t signalled = signalled_at_ns.load();
        if (signalled != 0 && started > signalled) {
          ++after[status.ok() ? "OK"
                              : absl::StrCat("code ", status.error_code())];
        } else if (status.ok()) {
          ++ok_before;
        } else if (status.error_code() != grpc::UNAVAILABLE) {
          // Started before the signal: answered, or refused as draining.
          unexpected.push_back(
              absl::StrCat(status.error_code(), " ", status.error_message()));
        }
      }
    });
  }
  // Traffic first, then the signal in the middle of it.
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (ok_before >= 200) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  signalled_at_ns.store(absl::GetCurrentTimeNanos());
  kill(server->pid(), SIGTERM);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  stop.store(true);
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(server->WaitForExit(std::chrono::seconds(60)), 0);
  EXPECT_THAT(unexpected, ::testing::IsEmpty());
  // Calls started after the signal: refused, and as UNAVAILABLE only (the
  // server stays up answering so until calls stop, then shuts down; calls
  // then find no listener, also UNAVAILABLE).
  // (Calls that start between the kill() and the server's taking the
  // signal may still be computed: OK.)
  for (const auto& [code, count] : after) {
    EXPECT_TRUE(code == "OK" ||
                code == absl::StrCat("code ", grpc::UNAVAILABLE))
        << count << " calls after SIGTERM got " << code;
  }
  EXPECT_GT(after[absl::StrCat("code ", grpc::UNAVAILABLE)], 0);
  // Once the server has refused a call, no call that starts later is
  // computed.
  EXPECT_EQ(computed_after_refusal.load(), 0);
}

// A request whose deadline passes while it is computed is counted as the
// client sees it (DEADLINE_EXCEEDED), not OK; requests refused before they
// are scheduled (ModelInfer's unknown model, bad version or shape; Predict's
// corrupt bytes) are counted too, under their codes.
TEST(RequestPathTest, RequestsAreCountedByTheCodeTheClientGets) {
  auto server =
      ServerProcess::Start({"--model_repository=" BISERVE_SOURCE_DIR "/models",
                            "--threads=1", "--max_steps_per_sequence=2000000"});
  ASSERT_NE(server, nullptr);
  auto channel = Channel(*server);
  auto stub = v1::InferenceService::NewStub(channel);
  {
    // Two million recurrent steps, one after the other: seconds of work
    // on any machine, from a 2 MB message that arrives in milliseconds, so
    // the idle server starts it at once and its 1 s deadline passes
    // while it is computed.
    v1::PredictRequest request;
    request.set_model_name("brackets");
    v1::Sequence* sequence = request.add_sequences();
    for (int i = 0; i < 2000000; ++i) sequence->add_token_ids(1 + i % 28);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::milliseconds(1000));
    v1::PredictResponse response;
    EXPECT_EQ(stub->Predict(&context, request, &response).error_code(),
              grpc::DEADLINE_EXCEEDED);
  }
  auto open = inference::GRPCInferenceService::NewStub(channel);
  auto infer = [&](const std::string& model, const std::string& version) {
    grpc::ClientContext context;
    inference::ModelInferRequest request;
    request.set_model_name(model);
    request.set_model_version(version);
    auto* input = request.add_inputs();
    input->set_name("features");
    input->set_datatype("FP32");
    for (int64_t d : {1, 2, 3}) input->add_shape(d);  // input_dim is 8
    for (int i = 0; i < 6; ++i) input->mutable_contents()->add_fp32_contents(1);
    inference::ModelInferResponse response;
    return open->ModelInfer(&context, request, &response).error_code();
  };
  EXPECT_EQ(infer("no_such_model", ""), grpc::NOT_FOUND);
  EXPECT_EQ(infer("example", "x"), grpc::INVALID_ARGUMENT);
  EXPECT_EQ(infer("example", ""), grpc::INVALID_ARGUMENT);  // shape
  {
    // Sent as bytes: not a PredictRequest.
    const grpc::Status status =
        RawCall(channel, "/biserve.v1.InferenceService/Predict",
                "\x0a\xff\xff\xff\x0f");
    EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(),
                HasSubstr("not a valid biserve.v1.PredictRequest"));
  }
  // The computed request is answered (and counted) once its batch ends:
  // a second or two in a Release build, about a minute under
  // ThreadSanitizer (every load and store of the kernels instrumented),
  // more on a loaded machine. Bounded at five minutes.
  std::string metrics;
  for (int i = 0; i < 3000; ++i) {
    metrics = HttpGet(server->metrics_port(), "/metrics");
    if (Sample(metrics, "biserve_requests_total",
               {{"rpc", "Predict"}, {"code", "DEADLINE_EXCEEDED"}}) >= 1) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(Sample(metrics, "biserve_requests_total",
                   {{"rpc", "Predict"}, {"code", "DEADLINE_EXCEEDED"}}),
            1)
      << metrics;
  EXPECT_EQ(Sample(metrics, "biserve_requests_total",
                   {{"rpc", "Predict"}, {"code", "OK"}}),
            0);
  EXPECT_EQ(Sample(metrics, "biserve_requests_total",
                   {{"rpc", "Predict"}, {"code", "INVALID_ARGUMENT"}}),
            1);
  EXPECT_EQ(
      Sample(metrics, "biserve_requests_total",
             {{"model", ""}, {"rpc", "ModelInfer"}, {"code", "NOT_FOUND"}}),
      1);
  EXPECT_EQ(Sample(metrics, "biserve_requests_total",
                   {{"rpc", "ModelInfer"}, {"code", "INVALID_ARGUMENT"}}),
            2);
  EXPECT_EQ(Sample(metrics, "biserve_requests_total",
                   {{"model", "example"},
                    {"rpc", "ModelInfer"},
                    {"code", "INVALID_ARGUMENT"}}),
            1);
  EXPECT_EQ(server->Stop(), 0);
}

// Requests that would take far more memory parsed than on the wire are
// refused before protobuf builds them, and the server's memory stays flat.
TEST(RequestPathTest, AmplifyingRequestsAreRefusedBeforeTheyAreParsed) {
  auto server = ServerProcess::Start(
      {"--model_repository=" BISERVE_SOURCE_DIR "/models"});
  ASSERT_NE(server, nullptr);
  auto channel = Channel(*server);
  auto call = [&](const std::string& method, const std::string& payload) {
    return RawCall(channel, method, payload);
  };
  auto rss_kb = [&] {
    std::ifstream status(absl::StrCat("/proc/", server->pid(), "/status"));
    std::string line;
    while (std::getline(status, line)) {
      int64_t kb = 0;
      if (line.rfind("VmRSS:", 0) == 0 &&
          absl::SimpleAtoi(absl::StripAsciiWhitespace(absl::StripSuffix(
                               absl::StripPrefix(line, "VmRSS:"), "kB")),
                           &kb)) {
        return kb;
      }
    }
    return int64_t{-1};
  };
  const int64_t before = rss_kb();
  const std::string name = std::string("\x0a\x08", 2) + "brackets";
  std::string empty_sequences, unknown_fields;
  for (int i = 0; i < 8000000; ++i)
    empty_sequences += std::string("\x1a\x00", 2);
  for (int i = 0; i < 8000000; ++i)
    unknown_fields += std::string("\x7a\x00", 2);
  for (int round = 0; round < 3; ++round) {
    grpc::Status s =
        call("/biserve.v1.InferenceService/Predict", name + empty_sequences);
    EXPECT_EQ(s.error_code(), grpc::RESOURCE_EXHAUSTED) << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr("once parsed"));
    s = call("/inference.GRPCInferenceService/ModelInfer",
             name + unknown_fields);
    EXPECT_EQ(s.error_code(), grpc::RESOURCE_EXHAUSTED) << s.error_message();
    s = call("/biserve.v1.InferenceService/ListModels", unknown_fields);
    EXPECT_EQ(s.error_code(), grpc::RESOURCE_EXHAUSTED) << s.error_message();
  }
  // 1025 sequences: refused by count (before the sequences are built).
  std::string sequences;
  for (int i = 0; i < 1025; ++i) {
    sequences += std::string("\x1a\x03\x1a\x01\x05", 5);  // token_ids [5]
  }
  grpc::Status s =
      call("/biserve.v1.InferenceService/Predict", name + sequences);
  EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("--max_sequences_per_request"));
  // Each of those was 16 MB on the wire and would have been 0.5 to 1 GB
  // parsed; once the server has returned their memory (a second after them
  // at most) it has grown by at most a few times one message, however many
  // threads received them. (A sanitizer's malloc keeps freed memory by its
  // own rules: plain builds only.)
  ASSERT_GT(before, 0);
  if (!Sanitized()) {
    int64_t after = rss_kb();
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (after - before >= 48 * 1024 && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(100));
      after = rss_kb();
    }
    EXPECT_LT(after - before, 48 * 1024) << before << " kB -> " << after;
  }
  // And it still answers.
  s = call("/biserve.v1.InferenceService/Predict",
           name + std::string("\x1a\x03\x1a\x01\x05", 5));
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(server->Stop(), 0);
}

// A reply's size follows from the model and the lengths: one that cannot
// fit --max_message_bytes is refused with RESOURCE_EXHAUSTED, saying how
// big it would be, before anything is computed, on Predict, PredictStream
// and ModelInfer alike; the requests around it are answered as usual.
TEST(RequestPathTest, RepliesThatCannotFitAreRefusedBeforeTheyAreComputed) {
  auto server =
      ServerProcess::Start({"--model_repository=" BISERVE_SOURCE_DIR "/models",
                            "--max_message_bytes=100000"});
  ASSERT_NE(server, nullptr);
  auto channel = Channel(*server);
  auto stub = v1::InferenceService::NewStub(channel);
  // example: [T, 8] -> Bidirectional(LSTM 16, sequences) -> Dense(4). 1000
  // steps: 32 KB in; the output alone, 16 KB out; with both directions,
  // 144 KB more.
  v1::PredictRequest big = FeatureRequest("example", 8, 1, 1000);
  big.set_outputs(v1::OUTPUT_SELECTION_BOTH);
  const v1::PredictRequest fits = FeatureRequest("example", 8, 1, 1000);
  auto expect_refused = [](const std::string& message) {
    EXPECT_THAT(message, HasSubstr("the reply would be 144"));
    EXPECT_THAT(message, HasSubstr("--max_message_bytes (100000 bytes)"));
    EXPECT_THAT(message, HasSubstr("fewer or shorter sequences"));
  };
  {
    grpc::ClientContext context;
    v1::PredictResponse response;
    const grpc::Status status = stub->Predict(&context, big, &response);
    EXPECT_EQ(status.error_code(), grpc::RESOURCE_EXHAUSTED);
    expect_refused(status.error_message());
  }
  {
    grpc::ClientContext context;
    v1::PredictResponse response;
    EXPECT_TRUE(stub->Predict(&context, fits, &response).ok());
  }
  {
    grpc::ClientContext context;
    auto stream = stub->PredictStream(&context);
    big.set_request_id("big");
    v1::PredictRequest small = fits;
    small.set_request_id("small");
    ASSERT_TRUE(stream->Write(big));
    ASSERT_TRUE(stream->Write(small));
    stream->WritesDone();
    std::map<std::string, v1::PredictResponse> answers;
    v1::PredictResponse answer;
    while (stream->Read(&answer)) answers[answer.request_id()] = answer;
    EXPECT_TRUE(stream->Finish().ok());
    EXPECT_EQ(answers["big"].error().code(), grpc::RESOURCE_EXHAUSTED);
    expect_refused(answers["big"].error().message());
    EXPECT_FALSE(answers["small"].has_error());
    EXPECT_EQ(answers["small"].sequences_size(), 1);
  }
  {
    // Two sequences of 1000 steps, both directions: 256 KB of values.
    inference::ModelInferRequest request;
    request.set_model_name("example");
    auto* input = request.add_inputs();
    input->set_name("features");
    input->set_datatype("FP32");
    for (int64_t d : {2, 1000, 8}) input->add_shape(d);
    for (int i = 0; i < 2 * 1000 * 8; ++i) {
      input->mutable_contents()->add_fp32_contents(0.01f * (i % 7));
    }
    request.add_outputs()->set_name("forward");
    request.add_outputs()->set_name("backward");
    grpc::ClientContext context;
    inference::ModelInferResponse response;
    const grpc::Status status =
        inference::GRPCInferenceService::NewStub(channel)->ModelInfer(
            &context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::RESOURCE_EXHAUSTED);
    EXPECT_THAT(status.error_message(), HasSubstr("the reply would be 256"));
  }
  // Counted under the version, and never computed: only the two requests
  // that fit added their steps. (A batch is counted just after its answers
  // go out: wait for the second, bounded.)
  std::string metrics;
  for (int i = 0; i < 300; ++i) {
    metrics = HttpGet(server->metrics_port(), "/metrics");
    if (Sample(metrics, "biserve_real_steps_total", {{"model", "example"}}) >=
        2000) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  for (const char* rpc : {"Predict", "PredictStream", "ModelInfer"}) {
    EXPECT_EQ(Sample(metrics, "biserve_requests_total",
                     {{"model", "example"},
                      {"version", "1"},
                      {"rpc", rpc},
                      {"code", "RESOURCE_EXHAUSTED"}}),
              1)
        << rpc << "\n"
        << metrics;
  }
  EXPECT_EQ(Sample(metrics, "biserve_real_steps_total", {{"model", "example"}}),
            2000);
  EXPECT_EQ(server->Stop(), 0);
}

}  // namespace
}  // namespace biserve
