// biserve_server end to end: the real binary on a loopback port, driven by a
// real gRPC client. Each test starts its own server (ServerProcess).
#include <sched.h>
#include <signal.h>

#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "biserve/v1/inference.grpc.pb.h"
#include "core/common/thread_pool.h"
#include "core/eval/evaluator.h"
#include "core/kernels/packed_gemm_bf16.h"
#include "core/kernels/precision.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "proto/model_codec.h"
#include "tests/server/command.h"
#include "tests/server/http_get.h"
#include "tests/server/reflected_services.h"
#include "tests/server/server_process.h"

namespace biserve {
namespace {

namespace fs = std::filesystem;
using ::biserve::testing::ServerProcess;
using ::testing::HasSubstr;

constexpr char kExampleModel[] =
    BISERVE_SOURCE_DIR "/models/example/1/model.pbtxt";
constexpr char kTinyModel[] = BISERVE_SOURCE_DIR "/tests/data/tiny.pbtxt";

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A fresh model repository for one test.
std::string MakeRepository() {
  const std::string root = absl::StrCat(
      ::testing::TempDir(), "/",
      ::testing::UnitTest::GetInstance()->current_test_info()->name(), "_repo");
  fs::remove_all(root);
  fs::create_directories(root);
  return root;
}

// Writes a version the way an operator should: into a hidden folder first,
// then renamed into place, so a scan never sees half a file.
void AddVersion(const std::string& repo, const std::string& model, int version,
                const std::string& content,
                const std::string& file = "model.pbtxt") {
  const std::string staging = absl::StrCat(repo, "/", model, "/.staging");
  fs::create_directories(staging);
  std::ofstream(staging + "/" + file) << content;
  fs::rename(staging, absl::StrCat(repo, "/", model, "/", version));
}

// tiny.pbtxt with its forward input weight changed: a distinct model of the
// same shape.
std::string TinyVariant(const std::string& weight) {
  std::string text = ReadText(kTinyModel);
  return absl::StrReplaceAll(
      text,
      {{"kernel { shape: [1, 1] values: [0.5] }\n        recurrent_kernel "
        "{ shape: [1, 1] values: [0.25] }",
        absl::StrCat("kernel { shape: [1, 1] values: [", weight,
                     "] }\n        recurrent_kernel { shape: [1, 1] "
                     "values: [0.25] }")}});
}

// gRPC clients refuse messages over 4 MB by default; outputs of whole
// batches are larger.
grpc::ChannelArguments UnlimitedReceive() {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  return args;
}

class Client {
 public:
  explicit Client(const std::string& address)
      : channel_(grpc::CreateCustomChannel(
            address, grpc::InsecureChannelCredentials(), UnlimitedReceive())),
        stub_(v1::InferenceService::NewStub(channel_)),
        health_(grpc::health::v1::Health::NewStub(channel_)) {}

  grpc::Status Predict(
      const v1::PredictRequest& request, v1::PredictResponse* response,
      std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + timeout);
    return stub_->Predict(&context, request, response);
  }

  grpc::health::v1::HealthCheckResponse::ServingStatus Health(
      const std::string& service, grpc::Status* status = nullptr) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(10));
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    grpc::Status s = health_->Check(&context, request, &response);
    if (status != nullptr) *status = s;
    return s.ok() ? response.status()
                  : grpc::health::v1::HealthCheckResponse::UNKNOWN;
  }

  v1::InferenceService::Stub& stub() { return *stub_; }
  std::shared_ptr<grpc::Channel> channel() { return channel_; }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::InferenceService::Stub> stub_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

// Random feature sequences of the given lengths.
v1::PredictRequest FeatureRequest(const std::string& model, int input_dim,
                                  const std::vector<int>& lengths,
                                  uint32_t seed = 1) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> value(-1, 1);
  v1::PredictRequest request;
  request.set_model_name(model);
  for (int length : lengths) {
    v1::Sequence* s = request.add_sequences();
    s->set_length(length);
    for (int i = 0; i < length * input_dim; ++i) s->add_features(value(rng));
  }
  return request;
}

// What core/ computes for `request` with the model file alone.
std::vector<SequenceResult> Reference(const std::string& model_path,
                                      const v1::PredictRequest& request,
                                      Precision precision = Precision::kFp32) {
  auto model = LoadModelFile(model_path, precision);
  EXPECT_TRUE(model.ok()) << model.status();
  auto pool = ThreadPool::Create({.num_threads = 1});
  std::vector<SequenceInput> inputs;
  for (const v1::Sequence& s : request.sequences()) {
    inputs.push_back(SequenceInput{
        .length = s.length(),
        .features = absl::MakeConstSpan(s.features().data(), s.features_size()),
        .token_ids =
            absl::MakeConstSpan(s.token_ids().data(), s.token_ids_size())});
  }
  EvalOptions options;
  options.directions = request.outputs() != v1::OUTPUT_SELECTION_MERGED;
  options.output = request.outputs() != v1::OUTPUT_SELECTION_DIRECTIONS;
  options.states = request.return_states();
  auto results = Evaluate(**model, inputs, options, **pool);
  EXPECT_TRUE(results.ok()) << results.status();
  return results.ok() ? *results : std::vector<SequenceResult>();
}

// Within `tolerance` of `expected`; 0 asks for the same values exactly.
void ExpectTensorNear(const v1::Tensor& actual, const Tensor& expected,
                      const std::string& what, double tolerance) {
  ASSERT_EQ(std::vector<int64_t>(actual.shape().begin(), actual.shape().end()),
            expected.shape)
      << what;
  ASSERT_EQ(actual.values_size(), static_cast<int>(expected.values.size()))
      << what;
  for (size_t i = 0; i < expected.values.size(); ++i) {
    ASSERT_NEAR(actual.values(i), expected.values[i], tolerance)
        << what << " value " << i;
  }
}

void ExpectMatchesReference(const v1::PredictResponse& response,
                            const std::vector<SequenceResult>& expected,
                            double tolerance = 1e-5) {
  ASSERT_EQ(response.sequences_size(), static_cast<int>(expected.size()));
  for (size_t i = 0; i < expected.size(); ++i) {
    const v1::SequenceOutput& out = response.sequences(i);
    const std::string at = absl::StrCat("sequence ", i);
    if (!expected[i].output.empty()) {
      ExpectTensorNear(out.output(), expected[i].output, at + " output",
                       tolerance);
    } else {
      EXPECT_FALSE(out.has_output()) << at;
    }
    if (!expected[i].forward.empty()) {
      ExpectTensorNear(out.forward(), expected[i].forward, at + " forward",
                       tolerance);
      ExpectTensorNear(out.backward(), expected[i].backward, at + " backward",
                       tolerance);
    }
    ASSERT_EQ(out.states_size(), static_cast<int>(expected[i].states.size()));
    for (size_t l = 0; l < expected[i].states.size(); ++l) {
      ASSERT_EQ(out.states(l).states_size(),
                static_cast<int>(expected[i].states[l].size()));
      for (size_t k = 0; k < expected[i].states[l].size(); ++k) {
        ExpectTensorNear(out.states(l).states(k), expected[i].states[l][k],
                         absl::StrCat(at, " state ", l, "/", k), tolerance);
      }
    }
  }
}

// Polls `condition` every 20 ms for up to `timeout`.
template <typename Condition>
bool WaitFor(Condition condition,
             std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return condition();
}

TEST(BiserveServerTest, PredictMatchesCoreEvaluationForEveryOutputSelection) {
  auto server = ServerProcess::Start(
      {"--model_repository=" BISERVE_SOURCE_DIR "/models"});
  ASSERT_NE(server, nullptr);
  Client client(server->address());
  for (auto outputs :
       {v1::OUTPUT_SELECTION_MERGED, v1::OUTPUT_SELECTION_DIRECTIONS,
        v1::OUTPUT_SELECTION_BOTH}) {
    for (bool states : {false, true}) {
      v1::PredictRequest request =
          FeatureRequest("example", 8, {7, 1, 30, 12}, 42);
      request.set_outputs(outputs);
      request.set_return_states(states);
      request.set_request_id("r1");
      v1::PredictResponse response;
      grpc::Status status = client.Predict(request, &response);
      ASSERT_TRUE(status.ok()) << status.error_message();
      EXPECT_EQ(response.request_id(), "r1");
      EXPECT_EQ(response.model_name(), "example");
      EXPECT_EQ(response.model_version(), 1);
      ExpectMatchesReference(response, Reference(kExampleModel, request));
      if (states) {
        EXPECT_EQ(response.sequences(0).states(0).layer(), "bidirectional");
      }
    }
  }
  EXPECT_EQ(server->Stop(), 0);
}

TEST(BiserveServerTest, BracketsExampleTagsTheCharactersInsideBrackets) {
  auto server = ServerProcess::Start(
      {"--model_repository=" BISERVE_SOURCE_DIR "/models"});
  ASSERT_NE(server, nullptr);
  Client client(server->address());
  const std::string vocabulary = " ()abcdefghijklmnopqrstuvwxyz";
  const std::string text = "call(foo bar) now";
  v1::PredictRequest request;
  request.set_model_name("brackets");
  v1::Sequence* sequence = request.add_sequences();
  for (char c : text) {
    sequence->add_token_ids(1 + static_cast<int>(vocabulary.find(c)));
  }
  v1::PredictResponse response;
  grpc::Status status = client.Predict(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  const v1::Tensor& out = response.sequences(0).output();
  ASSERT_EQ(out.shape_size(), 2);
  ASSERT_EQ(out.shape(0), static_cast<int64_t>(text.size()));
  std::string tags;
  for (int t = 0; t < out.shape(0); ++t) {
    tags += out.values(t) > 0.5f ? '^' : ' ';
  }
  EXPECT_EQ(tags, "     ^^^^^^^     ") << text;
  EXPECT_EQ(server->Stop(), 0);
}

TEST(BiserveServerTest,
     StreamAnswersEveryRequestWithItsIdAndKeepsGoingAfterAnError) {
  auto server = ServerProcess::Start(
      {"--model_repository=" BISERVE_SOURCE_DIR "/models"});
  ASSERT_NE(server, nullptr);
  Client client(server->address());
  grpc::ClientContext context;
  auto stream = client.stub().PredictStream(&context);
  std::map<std::string, v1::PredictRequest> sent;
  for (int i = 0; i < 20; ++i) {
    v1::PredictRequest request = FeatureRequest("example", 8, {1 + i, 3}, i);
    request.set_request_id(absl::StrCat("req-", i));
    if (i == 7) request.mutable_sequences(0)->add_features(1.0f);  // bad shape
    ASSERT_TRUE(stream->Write(request));
    sent[request.request_id()] = request;
  }
  stream->WritesDone();
  v1::PredictResponse response;
  std::map<std::string, v1::PredictResponse> received;
  while (stream->Read(&response)) received[response.request_id()] = response;
  grpc::Status status = stream->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(received.size(), sent.size());
  for (const auto& [id, request] : sent) {
    const v1::PredictResponse& r = received[id];
    if (id == "req-7") {
      EXPECT_EQ(r.error().code(), grpc::StatusCode::INVALID_ARGUMENT);
      EXPECT_THAT(r.error().message(), HasSubstr("sequences[0].features"));
      continue;
    }
    EXPECT_EQ(r.error().code(), 0) << r.error().message();
    ExpectMatchesReference(r, Reference(kExampleModel, request));
  }
  EXPECT_EQ(server->Stop(), 0);
}

TEST(BiserveServerTest, MetadataDescribesInputsOutputsAndLayers) {
  auto server = ServerProcess::Start(
      {"--model_repository=" BISERVE_SOURCE_DIR "/models"});
  ASSERT_NE(server, nullptr);
  Client client(server->address());
  grpc::ClientContext context;
  v1::GetModelMetadataRequest request;
  request.set_model_name("example");
  v1::GetModelMetadataResponse metadata;
  grpc::Status status =
      client.stub().GetModelMetadata(&context, request, &metadata);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(metadata.model_version(), 1);
  ASSERT_GE(metadata.inputs_size(), 1);
  EXPECT_EQ(metadata.inputs(0).name(), "features");
  EXPECT_THAT(metadata.inputs(0).shape(), ::testing::ElementsAre(-1, 8));
  ASSERT_GE(metadata.outputs_size(), 3);
  EXPECT_EQ(metadata.outputs(0).name(), "output");
  EXPECT_EQ(metadata.outputs(0).shape(0), -1);
  EXPECT_EQ(metadata.outputs(1).name(), "forward");
  EXPECT_THAT(metadata.outputs(1).shape(), ::testing::ElementsAre(-1, 16));
  ASSERT_GE(metadata.layers_size(), 1);
  EXPECT_EQ(metadata.layers(0).type(), "Bidirectional");
  EXPECT_EQ(metadata.layers(0).cell(), "LSTM");
  EXPECT_GT(metadata.layers(0).parameters(), 0);

  grpc::ClientContext list_context;
  v1::ListModelsResponse list;
  status =
      client.stub().ListModels(&list_context, v1::ListModelsRequest(), &list);
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::vector<std::string> names;
  for (const v1::ModelStatus& m : list.models()) {
    names.push_back(m.name());
    ASSERT_EQ(m.versions_size(), 1) << m.name();
    EXPECT_EQ(m.versions(0).state(), v1::ModelVersionStatus::STATE_AVAILABLE);
    EXPECT_EQ(m.version_policy(), "latest");
  }
  EXPECT_THAT(names, ::testing::Contains("example"));
  EXPECT_THAT(names, ::testing::Contains("brackets"));
  EXPECT_EQ(server->Stop(), 0);
}

struct ErrorCase {
  std::string name;
  v1::PredictRequest request;
  grpc::StatusCode code;
  std::string message;  // a substring the message must hold
};

TEST(BiserveServerTest, BadRequestsGetTheRightCodeAndAnActionableMessage) {
  auto server = ServerProcess::Start(
      {"--model_repository=" BISERVE_SOURCE_DIR "/models",
       "--max_sequences_per_request=4", "--max_steps_per_sequence=100",
       "--max_message_bytes=1000000"});
  ASSERT_NE(server, nullptr);
  Client client(server->address());
  std::vector<ErrorCase> cases;
  auto add = [&](std::string name, v1::PredictRequest request,
                 grpc::StatusCode code, std::string message) {
    cases.push_back(
        {std::move(name), std::move(request), code, std::move(message)});
  };
  add("unknown model", FeatureRequest("nope", 8, {3}), grpc::NOT_FOUND,
      "model 'nope' is not in the repository");
  {
    auto r = FeatureRequest("example", 8, {3});
    r.set_model_version(9);
    add("unknown version", r, grpc::NOT_FOUND, "available versions: 1");
  }
  add("no model name", FeatureRequest("", 8, {3}), grpc::INVALID_ARGUMENT,
      "model_name is empty");
  add("no sequences", FeatureRequest("example", 8, {}), grpc::INVALID_ARGUMENT,
      "sequences is empty");
  add("too many sequences", FeatureRequest("example", 8, {1, 1, 1, 1, 1}),
      grpc::INVALID_ARGUMENT, "at most 4 sequences");
  add("too long", FeatureRequest("example", 8, {101}), grpc::INVALID_ARGUMENT,
      "sequences[0].length: at most 100 time steps");
  {
    auto r = FeatureRequest("example", 8, {3, 2});
    r.mutable_sequences(1)->add_features(0.5f);
    add("wrong shape", r, grpc::INVALID_ARGUMENT,
        "sequences[1].features: expected shape [length, input_dim] = [2, 8]");
  }
  {
    auto r = FeatureRequest("example", 8, {3});
    r.mutable_sequences(0)->set_features(5, std::nanf(""));
    add("NaN", r, grpc::INVALID_ARGUMENT, "sequences[0].features[0][5] is nan");
  }
  {
    auto r = FeatureRequest("example", 8, {3});
    r.mutable_sequences(0)->set_features(
        9, std::numeric_limits<float>::infinity());
    add("Inf", r, grpc::INVALID_ARGUMENT, "features[1][1] is inf");
  }
  {
    auto r = FeatureRequest("example", 8, {2});
    r.mutable_sequences(0)->set_length(0);
    r.mutable_sequences(0)->add_features(1);
    add("features not a multiple", r, grpc::INVALID_ARGUMENT,
        "not a multiple of 8");
  }
  {
    auto r = FeatureRequest("example", 8, {2});
    r.mutable_sequences(0)->add_token_ids(3);
    add("token ids to a feature model", r, grpc::INVALID_ARGUMENT,
        "takes features (8 floats per time step), but the request sent "
        "token_ids");
  }
  {
    v1::PredictRequest r;
    r.set_model_name("brackets");
    r.add_sequences()->add_token_ids(30);
    add("token outside vocabulary", r, grpc::INVALID_ARGUMENT,
        "token_ids[0] = 30 is outside the vocabulary [0, 30)");
  }
  {
    auto r = FeatureRequest("example", 8, {2});
    r.mutable_sequences(0)->add_initial_state()->add_values(1);
    add("initial state count", r, grpc::INVALID_ARGUMENT,
        "initial_state: expected 4 tensors");
  }
  add("message too large", FeatureRequest("example", 8, {40000}),
      grpc::RESOURCE_EXHAUSTED, "");
  {
    auto r = FeatureRequest("example", 8, {2});
    r.set_model_version(-3);
    add("negative version", r, grpc::INVALID_ARGUMENT, "model_version");
  }
  for (const ErrorCase& c : cases) {
    v1::PredictResponse response;
    grpc::Status status = client.Predict(c.request, &response);
    EXPECT_EQ(status.error_code(), c.code)
        << c.name << ": " << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(c.message)) << c.name;
  }
  // And it still serves.
  v1::PredictResponse response;
  EXPECT_TRUE(
      client.Predict(FeatureRequest("example", 8, {3}), &response).ok());
  EXPECT_EQ(server->Stop(), 0);
}

TEST(BiserveServerTest, NonFiniteInputsAreAcceptedWhenAllowed) {
  auto server =
      ServerProcess::Start({"--model_repository=" BISERVE_SOURCE_DIR "/models",
                            "--allow_non_finite"});
  ASSERT_NE(server, nullptr);
  Client client(server->address());
  auto request = FeatureRequest("example", 8, {3});
  request.mutable_sequences(0)->set_features(5, std::nanf(""));
  v1::PredictResponse response;
  grpc::Status status = client.Predict(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(std::isnan(response.sequences(0).output().values(0)));
  EXPECT_EQ(server->Stop(), 0);
}

TEST(BiserveServerTest, RandomGarbageNeverCrashesTheServer) {
  auto server =
      ServerProcess::Start({"--model_repository=" BISERVE_SOURCE_DIR "/models",
                            "--max_steps_per_sequence=1000"});
  ASSERT_NE(server, nullptr);
  Client client(server->address());
  std::mt19937 rng(7);
  for (int i = 0; i < 300; ++i) {
    v1::PredictRequest request;
    request.set_model_name(rng() % 2 ? "example" : "brackets");
    request.set_model_version(static_cast<int64_t>(rng() % 3) - 1);
    request.set_outputs(static_cast<v1::OutputSelection>(rng() % 4));
    request.set_return_states(rng() % 2);
    const int sequences = rng() % 4;
    for (int s = 0; s < sequences; ++s) {
      v1::Sequence* seq = request.add_sequences();
      seq->set_length(static_cast<int64_t>(rng() % 2000) - 200);
      const int features = rng() % 40;
      for (int f = 0; f < features; ++f) {
        seq->add_features(std::bit_cast<float>(static_cast<uint32_t>(rng())));
      }
      const int tokens = rng() % 10;
      for (int t = 0; t < tokens; ++t) {
        seq->add_token_ids(static_cast<int32_t>(rng() % 64) - 8);
      }
      if (rng() % 4 == 0) seq->add_initial_state()->add_shape(rng() % 20);
    }
    v1::PredictResponse response;
    grpc::Status status = client.Predict(request, &response);
    EXPECT_TRUE(status.ok() || status.error_code() == grpc::INVALID_ARGUMENT ||
                status.error_code() == grpc::NOT_FOUND)
        << status.error_code() << " " << status.error_message();
  }
  EXPECT_FALSE(server->HasExited());
  v1::PredictResponse response;
  EXPECT_TRUE(
      client.Predict(FeatureRequest("example", 8, {3}), &response).ok());
  EXPECT_EQ(server->Stop(), 0);
}

TEST(BiserveServerTest, HealthIsServingOverallAndPerModel) {
  auto server = ServerProcess::Start(
      {"--model_repository=" BISERVE_SOURCE_DIR "/models"});
  ASSERT_NE(server, nullptr);
  Client client(server->address());
  using Health = grpc::health::v1::HealthCheckResponse;
  EXPECT_EQ(client.Health(""), Health::SERVING);
  EXPECT_EQ(client.Health("example"), Health::SERVING);
  EXPECT_EQ(client.Health("brackets"), Health::SERVING);
  grpc::Status status;
  client.Health("nope", &status);
  EXPECT_EQ(status.error_code(), grpc::NOT_FOUND);
  EXPECT_EQ(server->Stop(), 0);
}

// Server reflection, spoken as a generic tool would: a raw
// ServerReflectionInfo call with list_services set.
TEST(BiserveServerTest, ReflectionListsTheServices) {
  auto server =
      ServerProcess::Start({"--model_repository=" BISERVE_SOURCE_DIR "/models",
                            "--enable_reflection"});
  ASSERT_NE(server, nullptr);
  Client client(server->address());
  const std::string services =
      ::biserve::testing::ReflectedServices(client.channel());
  EXPECT_THAT(services, HasSubstr("biserve.v1.InferenceService"));
  EXPECT_THAT(services, HasSubstr("grpc.health.v1.Health"));
  EXPECT_EQ(server->Stop(), 0);
}

// Reflection is off unless asked for: gRPC's reflection service parses its
// requests without biserve's admission (a 60 MB request of unknown fields
// took 3.8 GB), so a server open to untrusted clients does not serve it.
TEST(BiserveServerTest, ReflectionIsOffByDefault) {
  auto server = ServerProcess::Start(
      {"--model_repository=" BISERVE_SOURCE_DIR "/models"});
  ASSERT_NE(server, nullptr);
  Client client(server->address());
  EXPECT_EQ(::biserve::testing::ReflectedServices(client.channel()), "");
  // The rest of the port serves as ever.
  EXPECT_EQ(client.Health(""), grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(server->Stop(), 0);
}

// Traffic never stops while versions come and go: a new version takes over,
// the old one unloads, a broken one is reported and changes nothing.
TEST(BiserveServerTest, ReloadUnderTrafficLosesNoRequest) {
  const std::string repo = MakeRepository();
  AddVersion(repo, "tiny", 1, TinyVariant("0.5"));
  auto server = ServerProcess::Start(
      {absl::StrCat("--model_repository=", repo), "--poll_interval_s=0.05"});
  ASSERT_NE(server, nullptr);

  const std::string v1_path = repo + "/v1.pbtxt", v2_path = repo + "/v2.pbtxt";
  std::ofstream(v1_path) << TinyVariant("0.5");
  std::ofstream(v2_path) << TinyVariant("-0.3");
  const v1::PredictRequest request = FeatureRequest("tiny", 1, {5, 2}, 3);
  const std::map<int64_t, std::vector<SequenceResult>> expected = {
      {1, Reference(v1_path, request)}, {2, Reference(v2_path, request)}};

  std::atomic<bool> stop{false};
  std::atomic<int> failures{0}, mismatches{0}, ok{0};
  std::mutex seen_mu;
  std::map<int64_t, int> seen;  // version -> responses
  std::vector<std::thread> clients;
  // Stops and joins the clients however the test ends.
  absl::Cleanup join_clients = [&] {
    stop.store(true);
    for (std::thread& t : clients) t.join();
  };
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&] {
      Client client(server->address());
      while (!stop.load()) {
        v1::PredictResponse response;
        grpc::Status status = client.Predict(request, &response);
        if (!status.ok()) {
          ++failures;
          ADD_FAILURE() << status.error_code() << " " << status.error_message();
          continue;
        }
        ++ok;
        auto it = expected.find(response.model_version());
        if (it == expected.end() ||
            std::abs(response.sequences(0).output().values(4) -
                     it->second[0].output.values[4]) > 1e-6) {
          ++mismatches;
        }
        std::lock_guard<std::mutex> lock(seen_mu);
        ++seen[response.model_version()];
      }
    });
  }
  auto seen_version = [&](int64_t v) {
    std::lock_guard<std::mutex> lock(seen_mu);
    return seen[v] > 0;
  };
  Client client(server->address());
  // The one model's status.
  auto list = [&]() {
    grpc::ClientContext context;
    v1::ListModelsResponse response;
    grpc::Status status = client.stub().ListModels(&context, {}, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.models_size(), 1) << response.DebugString();
    return response.models_size() == 1 ? response.models(0) : v1::ModelStatus();
  };
  ASSERT_TRUE(WaitFor([&] { return seen_version(1); }));
  AddVersion(repo, "tiny", 2, TinyVariant("-0.3"));
  ASSERT_TRUE(WaitFor([&] { return seen_version(2); }));
  // Version 1 is unloaded (and forgotten once its last request ended).
  ASSERT_TRUE(WaitFor([&] {
    auto l = list();
    return l.versions_size() == 1 && l.versions(0).version() == 2;
  })) << list().DebugString();

  // A broken version 3: reported, and version 2 keeps serving.
  AddVersion(repo, "tiny", 3, "this is not a model");
  ASSERT_TRUE(WaitFor([&] {
    const v1::ModelStatus status = list();
    for (const auto& v : status.versions()) {
      if (v.version() == 3 &&
          v.state() == v1::ModelVersionStatus::STATE_FAILED) {
        return true;
      }
    }
    return false;
  })) << list().DebugString();
  const auto failed = list();
  bool reason_given = false;
  for (const auto& v : failed.versions()) {
    if (v.version() == 3) {
      reason_given =
          v.reason().find("not a valid biserve.v1.Model") != std::string::npos;
    }
  }
  EXPECT_TRUE(reason_given) << failed.DebugString();
  const int before = ok.load();
  ASSERT_TRUE(WaitFor([&] { return ok.load() > before + 20; }));
  std::move(join_clients).Invoke();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_THAT(server->Log(), HasSubstr("model tiny version 3: failed to load"));
  EXPECT_EQ(server->Stop(), 0);
}

TEST(BiserveServerTest, VersionPolicyAllServesEveryVersionOnRequest) {
  const std::string repo = MakeRepository();
  AddVersion(repo, "tiny", 1, TinyVariant("0.5"));
  AddVersion(repo, "tiny", 2, TinyVariant("-0.3"));
  std::ofstream(repo + "/tiny/config.pbtxt")
      << "version_policy { all {} }\nbatching { max_batch_size: 8 }\n";
  auto server =
      ServerProcess::Start({absl::StrCat("--model_repository=", repo)});
  ASSERT_NE(server, nullptr);
  Client client(server->address());
  for (int64_t version : {1, 2}) {
    auto request = FeatureRequest("tiny", 1, {4});
    request.set_model_version(version);
    v1::PredictResponse response;
    ASSERT_TRUE(client.Predict(request, &response).ok());
    EXPECT_EQ(response.model_version(), version);
  }
  v1::PredictResponse newest;
  ASSERT_TRUE(client.Predict(FeatureRequest("tiny", 1, {4}), &newest).ok());
  EXPECT_EQ(newest.model_version(), 2);
  grpc::ClientContext context;
  v1::GetModelMetadataRequest request;
  request.set_model_name("tiny");
  v1::GetModelMetadataResponse metadata;
  ASSERT_TRUE(
      client.stub().GetModelMetadata(&context, request, &metadata).ok());
  EXPECT_THAT(metadata.available_versions(), ::testing::ElementsAre(1, 2));
  EXPECT_EQ(metadata.batching().max_batch_size(), 8);
  EXPECT_EQ(server->Stop(), 0);
}

TEST(BiserveServerTest, AModelWhoseEveryVersionFailedIsAFailedPrecondition) {
  const std::string repo = MakeRepository();
  AddVersion(repo, "broken", 1, "layers { dense { units: 0 } }");
  AddVersion(repo, "tiny", 1, TinyVariant("0.5"));
  auto server =
      ServerProcess::Start({absl::StrCat("--model_repository=", repo)});
  ASSERT_NE(server, nullptr);
  Client client(server->address());
  v1::PredictResponse response;
  grpc::Status status =
      client.Predict(FeatureRequest("broken", 1, {2}), &response);
  EXPECT_EQ(status.error_code(), grpc::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("version 1"));
  EXPECT_EQ(client.Health("broken"),
            grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  EXPECT_TRUE(client.Predict(FeatureRequest("tiny", 1, {2}), &response).ok());
  EXPECT_EQ(server->Stop(), 0);
}

TEST(BiserveServerTest, AFullQueueAnswersUnavailableAtOnce) {
  auto server = ServerProcess::Start({"--model_repository=" BISERVE_SOURCE_DIR
                                      "/bench/models",
                                      "--threads=1", "--max_queue_size=1"});
  ASSERT_NE(server, nullptr);
  // Each takes tens of milliseconds; sent together, one runs, one waits and
  // the others find the queue full.
  const v1::PredictRequest request =
      FeatureRequest("w2_lstm", 64, std::vector<int>(32, 200), 5);
  std::atomic<int> ok{0}, unavailable{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 8; ++i) {
    clients.emplace_back([&] {
      Client client(server->address());
      v1::PredictResponse response;
      grpc::Status status = client.Predict(request, &response);
      if (status.ok()) ++ok;
      if (status.error_code() == grpc::UNAVAILABLE) {
        EXPECT_THAT(status.error_message(), HasSubstr("is full"));
        ++unavailable;
      }
    });
  }
  for (std::thread& t : clients) t.join();
  EXPECT_GE(ok.load(), 1);
  EXPECT_GE(unavailable.load(), 1);
  EXPECT_EQ(ok.load() + unavailable.load(), 8);
  EXPECT_EQ(server->Stop(), 0);
}

// Many clients at once with random length mixes: batches form (one batch
// thread, a long delay), and every answer has the bits of the request
// evaluated alone.
TEST(BiserveServerTest, ConcurrentRequestsGetTheirSoloResultsWhenBatched) {
  for (const char* batching :
       {"--enable_batching=true", "--enable_batching=false"}) {
    auto server = ServerProcess::Start(
        {"--model_repository=" BISERVE_SOURCE_DIR "/models", batching,
         "--batch_threads=1", "--max_queue_delay_us=5000", "--threads=2"});
    ASSERT_NE(server, nullptr);
    std::atomic<int> checked{0};
    std::vector<std::thread> clients;
    for (int c = 0; c < 16; ++c) {
      clients.emplace_back([&, c] {
        Client client(server->address());
        std::mt19937 rng(c);
        for (int r = 0; r < 6; ++r) {
          std::vector<int> lengths(1 + rng() % 3);
          for (int& l : lengths) l = 1 + rng() % 60;
          v1::PredictRequest request =
              FeatureRequest("example", 8, lengths, 100 * c + r);
          request.set_outputs(static_cast<v1::OutputSelection>(rng() % 3));
          request.set_return_states(rng() % 2);
          v1::PredictResponse response;
          grpc::Status status = client.Predict(request, &response);
          ASSERT_TRUE(status.ok()) << status.error_message();
          // Bit for bit: batch invariance (README, Correctness).
          ExpectMatchesReference(response, Reference(kExampleModel, request),
                                 /*tolerance=*/0.0);
          ++checked;
        }
      });
    }
    for (std::thread& t : clients) t.join();
    EXPECT_EQ(checked.load(), 16 * 6) << batching;
    EXPECT_EQ(server->Stop(), 0);
  }
}

// The server's biserve_inflight_requests, summed over its labels, from its
// /metrics endpoint.
int InflightRequests(int metrics_port) {
  int total = 0;
  for (absl::string_view line : absl::StrSplit(
           biserve::testing::HttpGet(metrics_port, "/metrics"), '\n')) {
    if (!absl::StartsWith(line, "biserve_inflight_requests")) continue;
    double value = 0;
    const size_t space = line.rfind(' ');
    if (space != absl::string_view::npos &&
        absl::SimpleAtod(line.substr(space + 1), &value)) {
      total += static_cast<int>(value);
    }
  }
  return total;
}

// SIGTERM with requests in flight: every one of them is answered, health
// turns NOT_SERVING, new calls are refused, and the exit code is 0.
TEST(BiserveServerTest, ShutdownDrainsEveryRequestInFlight) {
  // The drain waits for every request, however long that takes here: under
  // ThreadSanitizer one of these requests computes for about 20 s.
  auto server = ServerProcess::Start({"--model_repository=" BISERVE_SOURCE_DIR
                                      "/bench/models",
                                      "--threads=2", "--drain_timeout_s=600"});
  ASSERT_NE(server, nullptr);
  // About 2.5 GFLOP each: tens of milliseconds, so they queue.
  const v1::PredictRequest request =
      FeatureRequest("w2_lstm", 64, std::vector<int>(32, 200), 5);
  constexpr int kRequests = 12;
  std::atomic<int> answered{0}, succeeded{0};
  std::vector<std::thread> clients;
  absl::Cleanup join_clients = [&] {
    for (std::thread& t : clients) t.join();
  };
  for (int i = 0; i < kRequests; ++i) {
    clients.emplace_back([&] {
      Client client(server->address());
      v1::PredictResponse response;
      grpc::Status status =
          client.Predict(request, &response, std::chrono::seconds(600));
      if (status.ok()) {
        ++succeeded;
      } else {
        ADD_FAILURE() << status.error_code() << " " << status.error_message();
      }
      ++answered;
    });
  }
  // Every request has reached the server (in flight there, or answered):
  // on a loaded machine a client thread may connect only after others were
  // answered, so the first answer alone proves nothing.
  ASSERT_TRUE(WaitFor(
      [&] {
        return InflightRequests(server->metrics_port()) + answered.load() >=
               kRequests;
      },
      std::chrono::seconds(60)));
  ASSERT_LT(answered.load(), kRequests)
      << "the machine is too fast for this test";
  kill(server->pid(), SIGTERM);
  ASSERT_TRUE(server->WaitForLog("draining", std::chrono::seconds(10)));
  // A second signal during the drain (an impatient operator, or a
  // supervisor repeating itself) must not cut it short.
  kill(server->pid(), SIGTERM);
  Client late(server->address());
  grpc::Status health_status;
  EXPECT_NE(late.Health("", &health_status),
            grpc::health::v1::HealthCheckResponse::SERVING);
  v1::PredictResponse refused;
  EXPECT_EQ(
      late.Predict(FeatureRequest("w2_lstm", 64, {3}), &refused).error_code(),
      grpc::UNAVAILABLE);
  std::move(join_clients).Invoke();
  EXPECT_EQ(succeeded.load(), kRequests);
  EXPECT_EQ(server->WaitForExit(std::chrono::seconds(60)), 0);
  EXPECT_THAT(server->Log(), HasSubstr("stopped"));
}

// gRPC would share a port in use (SO_REUSEPORT) and split the connections
// between two servers; the second one must refuse to start instead.
TEST(BiserveServerTest, ASecondServerOnAPortInUseRefusesToStart) {
  auto first = ServerProcess::Start(
      {"--model_repository=" BISERVE_SOURCE_DIR "/models"});
  ASSERT_NE(first, nullptr);
  const testing::CommandResult second =
      testing::RunCommand(absl::StrCat(
          BISERVE_BIN_DIR "/biserve_server --host=127.0.0.1 --metrics_port=0 "
                          "--model_repository=" BISERVE_SOURCE_DIR "/models "
                          "--port=",
          first->port()));
  EXPECT_NE(second.exit_code, 0) << second.out;
  EXPECT_THAT(second.out, HasSubstr("cannot listen on"));
  EXPECT_EQ(first->Stop(), 0);
}

// The precision a model's config.pbtxt asks for, or --precision, is what it
// serves in (where this CPU has a bf16 kernel; else FP32, said so), and what
// metadata and biserve_build_info report.
TEST(BiserveServerTest, PrecisionFromConfigOrFlagIsServedAndReported) {
  const std::string repo = MakeRepository();
  const std::string example = ReadText(kExampleModel);
  AddVersion(repo, "as_flag", 1, example);
  AddVersion(repo, "bf16", 1, example);
  std::ofstream(repo + "/bf16/config.pbtxt") << "precision: BF16\n";
  AddVersion(repo, "fp32", 1, example);
  std::ofstream(repo + "/fp32/config.pbtxt") << "precision: FP32\n";
  const bool has_bf16 = PackedGemmBf16Available();
  for (const std::string flag : {"FP32", "BF16"}) {
    SCOPED_TRACE("--precision=" + flag);
    auto server = ServerProcess::Start(
        {"--model_repository=" + repo, "--precision=" + flag});
    ASSERT_NE(server, nullptr);
    Client client(server->address());
    for (const std::string model : {"as_flag", "bf16", "fp32"}) {
      const std::string asked =
          model == "as_flag" ? flag : absl::AsciiStrToUpper(model);
      grpc::ClientContext context;
      v1::GetModelMetadataRequest request;
      request.set_model_name(model);
      v1::GetModelMetadataResponse metadata;
      ASSERT_TRUE(
          client.stub().GetModelMetadata(&context, request, &metadata).ok());
      const bool fallback = asked == "BF16" && !has_bf16;
      EXPECT_EQ(metadata.precision(), fallback ? "FP32" : asked) << model;
      if (fallback) {
        EXPECT_THAT(metadata.precision_note(), HasSubstr("BF16 was asked"));
        EXPECT_THAT(server->Log(), HasSubstr("BF16 was asked for"));
      } else {
        EXPECT_EQ(metadata.precision_note(), "") << model;
      }
      // The served bits are core/'s in that precision.
      const v1::PredictRequest predict = FeatureRequest(model, 8, {5, 12, 1});
      v1::PredictResponse response;
      ASSERT_TRUE(client.Predict(predict, &response).ok());
      ExpectMatchesReference(
          response,
          Reference(kExampleModel, predict,
                    asked == "BF16" ? Precision::kBf16 : Precision::kFp32),
          /*tolerance=*/0);
    }
    const std::string metrics =
        testing::HttpGet(server->metrics_port(), "/metrics");
    EXPECT_THAT(metrics,
                HasSubstr(absl::StrCat("default_precision=\"", flag, "\"")));
    EXPECT_THAT(metrics, HasSubstr(has_bf16 ? "bf16_kernel=\"avx512_bf16\""
                                            : "bf16_kernel=\"none\""));
    EXPECT_EQ(server->Stop(), 0);
  }
  const testing::CommandResult bad = testing::RunCommand(
      BISERVE_BIN_DIR "/biserve_server --precision=FP8 --port=0");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_THAT(bad.out, HasSubstr("expected FP32 or BF16"));
}

// How many threads of process `pid` run under each scheduling policy.
std::map<int, int> SchedulingPolicies(pid_t pid) {
  std::map<int, int> policies;
  const std::string tasks = absl::StrCat("/proc/", pid, "/task");
  for (const auto& task : std::filesystem::directory_iterator(tasks)) {
    int tid = 0;
    if (!absl::SimpleAtoi(task.path().filename().string(), &tid)) continue;
    const int policy = sched_getscheduler(tid);
    if (policy >= 0) ++policies[policy & ~SCHED_RESET_ON_FORK];
  }
  return policies;
}

TEST(BiserveServerTest, ThreadsRunUnderSchedBatchUnlessTurnedOff) {
  const std::string repo = MakeRepository();
  AddVersion(repo, "example", 1, ReadText(kExampleModel));
  const int started_with = sched_getscheduler(0) & ~SCHED_RESET_ON_FORK;
  for (const bool on : {true, false}) {
    SCOPED_TRACE(absl::StrCat("--sched_batch=", on));
    auto server = ServerProcess::Start(
        {"--model_repository=" + repo, absl::StrCat("--sched_batch=", on)});
    ASSERT_NE(server, nullptr);
    // A request first, so that gRPC's threads have started and served.
    Client client(server->address());
    v1::PredictResponse response;
    ASSERT_TRUE(
        client.Predict(FeatureRequest("example", 8, {5, 12}), &response).ok());
    // Every thread: main, the batch thread, the pool's, gRPC's and the
    // metrics server's (at least four).
    const std::map<int, int> policies = SchedulingPolicies(server->pid());
    ASSERT_EQ(policies.size(), 1u);
    EXPECT_EQ(policies.begin()->first, on ? SCHED_BATCH : started_with);
    EXPECT_GE(policies.begin()->second, 4);
    EXPECT_THAT(server->Log(), ::testing::Not(HasSubstr("SCHED_BATCH")));
    EXPECT_EQ(server->Stop(), 0);
  }
}

}  // namespace
}  // namespace biserve
