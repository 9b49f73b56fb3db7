// PredictResponseBytes and InferResponseBytes against the sizes of real
// replies: random models (every cell, merge mode, return_sequences, heads,
// Embedding and Masking inputs), ragged batches, every output selection,
// with and without states, raw and typed Open Inference contents.
#include "proto/reply_size.h"

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/common/thread_pool.h"
#include "core/eval/evaluator.h"
#include "core/model/model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/inference_codec.h"
#include "proto/open_inference_codec.h"
#include "tests/support/random_model.h"

namespace biserve {
namespace {

using ::testing::HasSubstr;
using testing::RandomModelSpec;
using testing::RandomValues;

// A request of sequences of `lengths` for `model`, random inputs.
v1::PredictRequest RandomRequest(std::mt19937& rng, const Model& model,
                                 const std::vector<int64_t>& lengths) {
  v1::PredictRequest request;
  request.set_model_name("m");
  for (int64_t length : lengths) {
    v1::Sequence* s = request.add_sequences();
    s->set_length(length);
    if (model.takes_token_ids()) {
      std::uniform_int_distribution<int> id(
          0, static_cast<int>(model.embedding()->embeddings.rows()) - 1);
      for (int64_t t = 0; t < length; ++t) s->add_token_ids(id(rng));
    } else {
      const std::vector<float> x =
          RandomValues(rng, length * model.input_dim());
      s->mutable_features()->Assign(x.begin(), x.end());
    }
  }
  return request;
}

// What the server answers: the results of `request` in a PredictResponse.
v1::PredictResponse Answer(const Model& model,
                           const v1::PredictRequest& request,
                           const EvalOptions& options, int64_t version,
                           ThreadPool& pool) {
  absl::StatusOr<std::vector<SequenceInput>> inputs =
      SequencesFromRequest(request, model, RequestLimits());
  EXPECT_TRUE(inputs.ok()) << inputs.status();
  absl::StatusOr<std::vector<SequenceResult>> results =
      Evaluate(model, *inputs, options, pool);
  EXPECT_TRUE(results.ok()) << results.status();
  v1::PredictResponse response;
  response.set_request_id(request.request_id());
  response.set_model_name(request.model_name());
  response.set_model_version(version);
  ResultsToResponse(model, *std::move(results), &response);
  return response;
}

std::vector<int64_t> RandomLengths(std::mt19937& rng) {
  const int count = std::uniform_int_distribution<int>(1, 5)(rng);
  std::vector<int64_t> lengths;
  for (int i = 0; i < count; ++i) {
    lengths.push_back(std::uniform_int_distribution<int>(1, 40)(rng));
  }
  return lengths;
}

TEST(ReplySizeTest, PredictResponseBytesIsTheSerializedSize) {
  auto pool = ThreadPool::Create({.num_threads = 1});
  ASSERT_TRUE(pool.ok());
  std::mt19937 rng(16);
  for (int trial = 0; trial < 200; ++trial) {
    SCOPED_TRACE(::testing::Message() << "trial " << trial);
    auto model = Model::Create(RandomModelSpec(rng));
    ASSERT_TRUE(model.ok()) << model.status();
    v1::PredictRequest request =
        RandomRequest(rng, **model, RandomLengths(rng));
    // Ids and versions of one and of two varint bytes.
    request.set_request_id(trial % 2 ? "" : std::string(trial + 1, 'r'));
    const int64_t version = trial % 3 ? 1 : 300;
    for (int selection = 0; selection < 6; ++selection) {
      EvalOptions options;
      options.output = selection % 3 != 1;
      options.directions = selection % 3 != 0;
      options.states = selection >= 3;
      const v1::PredictResponse response =
          Answer(**model, request, options, version, **pool);
      absl::StatusOr<std::vector<SequenceInput>> inputs =
          SequencesFromRequest(request, **model, RequestLimits());
      ASSERT_TRUE(inputs.ok());
      EXPECT_EQ(PredictResponseBytes(**model, "m", version,
                                     request.request_id(), options, *inputs),
                static_cast<int64_t>(response.ByteSizeLong()))
          << "output " << options.output << " directions " << options.directions
          << " states " << options.states;
    }
  }
}

TEST(ReplySizeTest, LongSequencesNeedLongerLengthPrefixes) {
  auto pool = ThreadPool::Create({.num_threads = 1});
  ASSERT_TRUE(pool.ok());
  std::mt19937 rng(61);
  auto model = Model::Create(RandomModelSpec(rng));
  ASSERT_TRUE(model.ok()) << model.status();
  const v1::PredictRequest request =
      RandomRequest(rng, **model, {5000, 1, 700});
  EvalOptions options;
  options.directions = true;
  options.states = true;
  const v1::PredictResponse response =
      Answer(**model, request, options, 7, **pool);
  absl::StatusOr<std::vector<SequenceInput>> inputs =
      SequencesFromRequest(request, **model, RequestLimits());
  ASSERT_TRUE(inputs.ok());
  EXPECT_EQ(PredictResponseBytes(**model, "m", 7, "", options, *inputs),
            static_cast<int64_t>(response.ByteSizeLong()));
}

TEST(ReplySizeTest, InferResponseBytesIsTheSerializedSize) {
  auto pool = ThreadPool::Create({.num_threads = 1});
  ASSERT_TRUE(pool.ok());
  std::mt19937 rng(17);
  for (int trial = 0; trial < 200; ++trial) {
    SCOPED_TRACE(::testing::Message() << "trial " << trial);
    auto model = Model::Create(RandomModelSpec(rng));
    ASSERT_TRUE(model.ok()) << model.status();
    const std::vector<int64_t> lengths = RandomLengths(rng);
    OpenInferCall call;
    call.request = RandomRequest(rng, **model, lengths);
    call.request.set_request_id(trial % 2 ? "" : "id-" + std::to_string(trial));
    // T: the longest sequence, or more (the client's padding).
    call.time_steps = *std::max_element(lengths.begin(), lengths.end()) +
                      (trial % 4 == 0 ? 3 : 0);
    call.raw_outputs = trial % 2 == 0;
    // A random subset of the model's outputs, in a random order.
    for (const OpenTensorSpec& spec : OpenInferenceOutputs(**model)) {
      if (std::bernoulli_distribution(0.6)(rng)) {
        call.outputs.push_back(spec.name);
      }
    }
    if (call.outputs.empty()) call.outputs.push_back("forward");
    std::shuffle(call.outputs.begin(), call.outputs.end(), rng);
    EvalOptions everything;
    everything.directions = true;
    everything.states = true;
    const int64_t version = trial % 3 ? 2 : 1000;
    const v1::PredictResponse predict =
        Answer(**model, call.request, everything, version, **pool);
    inference::ModelInferResponse response;
    ASSERT_TRUE(
        InferResponseFromPredict(predict, call, **model, &response).ok());
    EXPECT_EQ(InferResponseBytes(call, **model, "m", version),
              static_cast<int64_t>(response.ByteSizeLong()))
        << "raw " << call.raw_outputs;
  }
}

TEST(ReplySizeTest, CheckReplyBytesSaysHowBigTheLimitAndWhatToDo) {
  EXPECT_TRUE(CheckReplyBytes(1000, 1000).ok());
  EXPECT_TRUE(CheckReplyBytes(int64_t{1} << 40, 0).ok());  // no limit
  const absl::Status status = CheckReplyBytes(1001, 1000);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(status.message(), HasSubstr("1001 bytes"));
  EXPECT_THAT(status.message(), HasSubstr("--max_message_bytes (1000 bytes)"));
  EXPECT_THAT(status.message(), HasSubstr("fewer or shorter sequences"));
}

}  // namespace
}  // namespace biserve
