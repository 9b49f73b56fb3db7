// The C++ client library against a real biserve_server over loopback.
#include "client/biserve_client.h"

#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/model_codec.h"
#include "tests/server/http_get.h"
#include "tests/server/server_process.h"

namespace biserve {
namespace {

using ::biserve::testing::HttpGet;
using ::biserve::testing::ServerProcess;
using ::testing::HasSubstr;

std::unique_ptr<BiserveClient> Connect(const ServerProcess& server) {
  auto client = BiserveClient::Create({.server = server.address()});
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? *std::move(client) : nullptr;
}

std::vector<OwnedSequence> ExampleSequences() {
  std::vector<OwnedSequence> sequences(2);
  sequences[0].length = 3;
  sequences[1].length = 5;
  for (OwnedSequence& s : sequences) {
    for (int i = 0; i < s.length * 8; ++i)
      s.features.push_back(0.1f * (i % 7) - 0.3f);
  }
  return sequences;
}

class BiserveClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = ServerProcess::Start(
        {"--model_repository=" BISERVE_SOURCE_DIR "/models"});
    ASSERT_NE(server_, nullptr);
    client_ = Connect(*server_);
    ASSERT_NE(client_, nullptr);
  }
  void TearDown() override {
    if (server_) {
      EXPECT_EQ(server_->Stop(), 0);
    }
  }
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<BiserveClient> client_;
};

TEST_F(BiserveClientTest, PredictReturnsCoreTypesEqualToLocalEvaluation) {
  std::vector<OwnedSequence> sequences = ExampleSequences();
  absl::StatusOr<Prediction> prediction = client_->Predict(
      "example", sequences,
      {.outputs = OutputSelection::kBoth, .states = true, .request_id = "x"});
  ASSERT_TRUE(prediction.ok()) << prediction.status();
  EXPECT_EQ(prediction->model, "example");
  EXPECT_EQ(prediction->version, 1);
  EXPECT_EQ(prediction->request_id, "x");
  EXPECT_THAT(prediction->state_layers,
              ::testing::ElementsAre("bidirectional"));

  auto model =
      LoadModelFile(BISERVE_SOURCE_DIR "/models/example/1/model.pbtxt");
  ASSERT_TRUE(model.ok());
  auto pool = ThreadPool::Create({});
  std::vector<SequenceInput> inputs;
  for (const OwnedSequence& s : sequences) inputs.push_back(s.View());
  auto expected =
      Evaluate(**model, inputs,
               {.output = true, .directions = true, .states = true}, **pool);
  ASSERT_TRUE(expected.ok());
  ASSERT_EQ(prediction->sequences.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const SequenceResult& got = prediction->sequences[i];
    const SequenceResult& want = (*expected)[i];
    EXPECT_EQ(got.output.shape, want.output.shape);
    EXPECT_EQ(got.forward.shape, want.forward.shape);
    EXPECT_EQ(got.backward.shape, want.backward.shape);
    ASSERT_EQ(got.output.values.size(), want.output.values.size());
    for (size_t v = 0; v < want.output.values.size(); ++v) {
      EXPECT_NEAR(got.output.values[v], want.output.values[v], 1e-6);
    }
    ASSERT_EQ(got.states.size(), want.states.size());
    EXPECT_EQ(got.states[0].size(), 4u);  // LSTM: h and c per direction
  }
}

TEST_F(BiserveClientTest, ErrorsCarryTheServersCodeAndMessage) {
  absl::StatusOr<Prediction> missing =
      client_->Predict("nope", ExampleSequences());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  std::vector<OwnedSequence> bad = ExampleSequences();
  bad[1].features.pop_back();
  absl::StatusOr<Prediction> invalid = client_->Predict("example", bad);
  EXPECT_EQ(invalid.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(invalid.status().message(), HasSubstr("sequences[1].features"));
}

TEST_F(BiserveClientTest, StreamAnswersEveryRequest) {
  std::unique_ptr<PredictionStream> stream = client_->OpenStream();
  for (int i = 0; i < 10; ++i) {
    std::vector<OwnedSequence> sequences = ExampleSequences();
    if (i == 4) sequences[0].features.push_back(1);
    ASSERT_TRUE(stream->Send("example", sequences,
                             {.request_id = absl::StrCat("id", i)}));
  }
  stream->CloseSend();
  std::set<std::string> ids;
  int errors = 0;
  while (std::optional<StreamAnswer> answer = stream->Receive()) {
    ids.insert(answer->request_id);
    if (!answer->result.ok()) {
      ++errors;
      EXPECT_EQ(answer->request_id, "id4");
      EXPECT_EQ(answer->result.status().code(),
                absl::StatusCode::kInvalidArgument);
    } else {
      EXPECT_EQ(answer->result->sequences.size(), 2u);
    }
  }
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(ids.size(), 10u);
  EXPECT_EQ(errors, 1);
}

TEST_F(BiserveClientTest, MetadataListAndHealth) {
  absl::StatusOr<ModelMetadata> metadata =
      client_->GetModelMetadata("brackets");
  ASSERT_TRUE(metadata.ok()) << metadata.status();
  EXPECT_TRUE(metadata->input.token_ids);
  EXPECT_EQ(metadata->inputs[0].shape, std::vector<int64_t>{-1});
  EXPECT_EQ(metadata->outputs[0].shape, (std::vector<int64_t>{-1, 1}));
  EXPECT_THAT(
      metadata->layers,
      ::testing::Contains(HasSubstr("Bidirectional(LSTM, 16 units, concat)")));
  absl::StatusOr<ModelMetadata> example = client_->GetModelMetadata("example");
  ASSERT_TRUE(example.ok());
  EXPECT_FALSE(example->input.token_ids);
  EXPECT_EQ(example->input.input_dim, 8);

  absl::StatusOr<std::vector<ModelStatus>> models = client_->ListModels();
  ASSERT_TRUE(models.ok()) << models.status();
  ASSERT_GE(models->size(), 2u);
  for (const ModelStatus& m : *models) {
    ASSERT_FALSE(m.versions.empty());
    EXPECT_EQ(m.versions[0].state, VersionState::kAvailable) << m.name;
  }
  for (const std::string service : {"", "example"}) {
    absl::StatusOr<bool> serving = client_->IsServing(service);
    ASSERT_TRUE(serving.ok()) << serving.status();
    EXPECT_TRUE(*serving) << service;
  }
  EXPECT_EQ(client_->IsServing("nope").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(BiserveClientOptionsTest, UnreadableCertificatesAreRejected) {
  auto client = BiserveClient::Create(
      {.server = "localhost:1", .tls_root_certs_path = "/nonexistent/ca.pem"});
  EXPECT_EQ(client.status().code(), absl::StatusCode::kNotFound);
}

TEST(BiserveClientOptionsTest, ADownServerIsUnavailable) {
  auto client = BiserveClient::Create(
      {.server = "127.0.0.1:1", .timeout = absl::Seconds(5)});
  ASSERT_TRUE(client.ok());
  EXPECT_EQ((*client)->ListModels().status().code(),
            absl::StatusCode::kUnavailable);
}

// OK Predict calls of the example model a server has answered, from its
// /metrics.
double AnsweredPredicts(const ServerProcess& server) {
  const std::string sample =
      "biserve_requests_total{code=\"OK\",model=\"example\",rpc=\"Predict\","
      "version=\"1\"} ";
  const std::string text = HttpGet(server.metrics_port(), "/metrics");
  const size_t at = text.find(sample);
  double value = 0;
  if (at != std::string::npos) {
    const size_t from = at + sample.size();
    EXPECT_TRUE(absl::SimpleAtod(
        text.substr(from, text.find('\n', from) - from), &value));
  }
  return value;
}

// With round_robin over the addresses of two servers (what a headless
// Service resolves to), calls go to both.
TEST(BiserveClientBalancingTest, RoundRobinSpreadsCallsOverEveryServer) {
  std::vector<std::unique_ptr<ServerProcess>> servers;
  for (int i = 0; i < 2; ++i) {
    servers.push_back(ServerProcess::Start(
        {"--model_repository=" BISERVE_SOURCE_DIR "/models"}));
    ASSERT_NE(servers.back(), nullptr);
  }
  auto client = BiserveClient::Create(
      {.server = absl::StrCat("ipv4:", servers[0]->address(), ",",
                              servers[1]->address()),
       .load_balancing_policy = "round_robin"});
  ASSERT_TRUE(client.ok()) << client.status();
  const std::vector<OwnedSequence> sequences = ExampleSequences();
  constexpr int kCalls = 20;
  for (int i = 0; i < kCalls; ++i) {
    ASSERT_TRUE((*client)->Predict("example", sequences, {}).ok());
  }
  const double first = AnsweredPredicts(*servers[0]);
  const double second = AnsweredPredicts(*servers[1]);
  EXPECT_EQ(first + second, kCalls);
  EXPECT_GT(first, 0);
  EXPECT_GT(second, 0);
  for (auto& server : servers) EXPECT_EQ(server->Stop(), 0);
}

}  // namespace
}  // namespace biserve
