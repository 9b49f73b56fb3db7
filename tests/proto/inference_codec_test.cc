#include "proto/inference_codec.h"

#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/common/thread_pool.h"
#include "core/eval/evaluator.h"
#include "core/eval/field_error.h"
#include "core/model/model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/random_model.h"

namespace biserve {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::RandomValues;
using testing::RandomWeights;
using ::testing::StartsWith;

// An RNN layer of `cell` with random weights for `input_size` inputs.
RnnLayerSpec Rnn(std::mt19937& rng, const std::string& name, CellType cell,
                 int units, int input_size, bool return_sequences) {
  const int64_t g = GateCount(cell);
  RnnLayerSpec spec;
  spec.name = name;
  spec.cell = cell;
  spec.units = units;
  spec.return_sequences = return_sequences;
  spec.weights.kernel = RandomWeights(rng, {input_size, g * units});
  spec.weights.recurrent_kernel = RandomWeights(rng, {units, g * units});
  // GRU defaults to reset_after = true: two bias rows.
  spec.weights.bias = cell == CellType::kGru
                          ? RandomWeights(rng, {2, g * units})
                          : RandomWeights(rng, {g * units});
  return spec;
}

BidirectionalSpec Bidirectional(std::mt19937& rng, const std::string& name,
                                CellType cell, int units, int input_size,
                                bool return_sequences,
                                const std::string& merge_mode) {
  BidirectionalSpec spec;
  spec.name = name;
  spec.layer =
      Rnn(rng, name + "_forward", cell, units, input_size, return_sequences);
  spec.backward_weights =
      Rnn(rng, "", cell, units, input_size, return_sequences).weights;
  spec.merge_mode = merge_mode;
  return spec;
}

std::shared_ptr<const Model> Build(const ModelSpec& spec) {
  absl::StatusOr<std::shared_ptr<const Model>> model = Model::Create(spec);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? *model : nullptr;
}

// features [T, 3] -> Bidirectional(LSTM 4, sequences, concat) ->
// Bidirectional(GRU 2, last step, sum) -> Dense(5, softmax), declaring
// `declared_time_steps` as its source's time dimension (0: none).
std::shared_ptr<const Model> FeatureModel(int64_t declared_time_steps = 0) {
  std::mt19937 rng(1);
  ModelSpec spec;
  spec.name = "features";
  spec.input_dim = 3;
  spec.declared_time_steps = declared_time_steps;
  spec.layers.push_back(
      Bidirectional(rng, "bi_lstm", CellType::kLstm, 4, 3, true, "concat"));
  spec.layers.push_back(
      Bidirectional(rng, "bi_gru", CellType::kGru, 2, 8, false, "sum"));
  DenseSpec head;
  head.name = "head";
  head.units = 5;
  head.activation = "softmax";
  head.kernel = RandomWeights(rng, {2, 5});
  head.bias = RandomWeights(rng, {5});
  spec.layers.push_back(head);
  return Build(spec);
}

// features [T, 2] -> Masking(0) -> Bidirectional(SimpleRNN 3 forward, GRU 3
// backward, sequences, merge none).
std::shared_ptr<const Model> MergeNoneModel() {
  std::mt19937 rng(2);
  ModelSpec spec;
  spec.name = "merge_none";
  spec.input_dim = 2;
  spec.layers.push_back(MaskingSpec{"masking", 0.0f});
  BidirectionalSpec bidi;
  bidi.name = "bi";
  bidi.layer = Rnn(rng, "fw", CellType::kSimpleRnn, 3, 2, true);
  RnnLayerSpec backward = Rnn(rng, "bw", CellType::kGru, 3, 2, true);
  backward.go_backwards = true;
  bidi.backward_layer = backward;
  bidi.merge_mode = "none";
  spec.layers.push_back(bidi);
  return Build(spec);
}

// token ids in [0, 10) -> Embedding(4) -> Bidirectional(GRU 2, sequences,
// concat).
std::shared_ptr<const Model> TokenModel() {
  std::mt19937 rng(3);
  ModelSpec spec;
  spec.name = "tokens";
  EmbeddingSpec embedding;
  embedding.name = "embed";
  embedding.input_dim = 10;
  embedding.output_dim = 4;
  embedding.embeddings = Tensor{{10, 4}, RandomValues(rng, 40)};
  spec.layers.push_back(embedding);
  spec.layers.push_back(
      Bidirectional(rng, "bi", CellType::kGru, 2, 4, true, "concat"));
  return Build(spec);
}

v1::Sequence* AddFeatures(v1::PredictRequest& request, int64_t length,
                          std::vector<float> values) {
  v1::Sequence* s = request.add_sequences();
  s->set_length(length);
  s->mutable_features()->Assign(values.begin(), values.end());
  return s;
}

void AddState(v1::Sequence* s, std::vector<int64_t> shape,
              std::vector<float> values) {
  v1::Tensor* t = s->add_initial_state();
  t->mutable_shape()->Assign(shape.begin(), shape.end());
  t->mutable_values()->Assign(values.begin(), values.end());
}

class SequencesFromRequestTest : public ::testing::Test {
 protected:
  absl::StatusOr<std::vector<SequenceInput>> Convert() {
    return SequencesFromRequest(request_, *model_, limits_);
  }
  // The INVALID_ARGUMENT message of Convert(), or a failure.
  std::string Error() {
    absl::StatusOr<std::vector<SequenceInput>> got = Convert();
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(got.status().message());
  }

  std::shared_ptr<const Model> model_ = FeatureModel();  // input_dim 3
  RequestLimits limits_;
  v1::PredictRequest request_;
};

TEST_F(SequencesFromRequestTest, ViewsPointIntoTheRequest) {
  AddFeatures(request_, 2, std::vector<float>(6, 0.5f));
  v1::Sequence* second = AddFeatures(request_, 1, {1, 2, 3});
  AddState(second, {4}, {1, 1, 1, 1});
  AddState(second, {4}, {2, 2, 2, 2});
  AddState(second, {}, {3, 3, 3, 3});  // a shapeless tensor is a vector
  AddState(second, {4}, {4, 4, 4, 4});
  absl::StatusOr<std::vector<SequenceInput>> got = Convert();
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[0].length, 2);
  EXPECT_EQ((*got)[0].features.data(), request_.sequences(0).features().data());
  EXPECT_EQ((*got)[0].features.size(), 6u);
  EXPECT_THAT((*got)[0].initial_state, IsEmpty());
  EXPECT_EQ((*got)[1].length, 1);
  EXPECT_THAT((*got)[1].features, ElementsAre(1, 2, 3));
  ASSERT_EQ((*got)[1].initial_state.size(), 4u);
  EXPECT_EQ((*got)[1].initial_state[2].data(),
            request_.sequences(1).initial_state(2).values().data());
  EXPECT_THAT((*got)[1].initial_state[3], ElementsAre(4, 4, 4, 4));
}

TEST_F(SequencesFromRequestTest, LengthZeroIsInferredFromTheFeatures) {
  AddFeatures(request_, 0, std::vector<float>(12, 0.1f));
  absl::StatusOr<std::vector<SequenceInput>> got = Convert();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)[0].length, 4);
}

TEST_F(SequencesFromRequestTest, LengthZeroIsInferredFromTheTokenIds) {
  model_ = TokenModel();
  v1::Sequence* s = request_.add_sequences();
  for (int id : {1, 9, 0, 4, 4}) s->add_token_ids(id);
  absl::StatusOr<std::vector<SequenceInput>> got = Convert();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)[0].length, 5);
  EXPECT_THAT((*got)[0].token_ids, ElementsAre(1, 9, 0, 4, 4));
  EXPECT_TRUE((*got)[0].features.empty());
}

TEST_F(SequencesFromRequestTest, EmptyRequestIsRejected) {
  EXPECT_THAT(Error(), StartsWith("sequences is empty"));
}

TEST_F(SequencesFromRequestTest, TooManySequencesIsRejectedWithTheLimit) {
  limits_.max_sequences_per_request = 2;
  for (int i = 0; i < 3; ++i) AddFeatures(request_, 1, {1, 2, 3});
  const std::string error = Error();
  EXPECT_THAT(error, StartsWith("sequences: at most 2 sequences"));
  EXPECT_THAT(error, HasSubstr("--max_sequences_per_request"));
  EXPECT_THAT(error, HasSubstr("got 3"));
}

TEST_F(SequencesFromRequestTest, SequencesAtTheLimitAreAccepted) {
  limits_.max_sequences_per_request = 2;
  limits_.max_steps_per_sequence = 2;
  AddFeatures(request_, 2, std::vector<float>(6, 0.0f));
  AddFeatures(request_, 0, std::vector<float>(6, 0.0f));
  EXPECT_TRUE(Convert().ok());
}

TEST_F(SequencesFromRequestTest, NegativeLengthIsRejectedByField) {
  AddFeatures(request_, 1, {1, 2, 3});
  AddFeatures(request_, -2, {1, 2, 3});
  EXPECT_THAT(Error(), StartsWith("sequences[1].length must be at least 1 "
                                  "time step (or 0 to infer it); got -2"));
}

TEST_F(SequencesFromRequestTest, EmptySequenceIsRejectedByLength) {
  AddFeatures(request_, 0, {});
  EXPECT_THAT(Error(), StartsWith("sequences[0].length must be at least 1"));
}

TEST_F(SequencesFromRequestTest, InferredLengthNeedsWholeSteps) {
  AddFeatures(request_, 1, {1, 2, 3});
  AddFeatures(request_, 0, {1, 2, 3, 4, 5, 6, 7});
  EXPECT_EQ(Error(),
            "sequences[1].features: expected shape [length, input_dim] = "
            "[length, 3], got 7 values, not a multiple of 3");
}

TEST_F(SequencesFromRequestTest, WrongFeatureCountGivesExpectedAndGivenShape) {
  AddFeatures(request_, 1, {1, 2, 3});
  AddFeatures(request_, 2, {1, 2, 3, 4, 5});
  EXPECT_EQ(Error(),
            "sequences[1].features: expected shape [length, input_dim] = "
            "[2, 3] (6 values), got 5 values");
}

TEST_F(SequencesFromRequestTest, TooLongSequenceIsRejectedWithTheLimit) {
  limits_.max_steps_per_sequence = 3;
  AddFeatures(request_, 4, std::vector<float>(12, 0.0f));
  const std::string error = Error();
  EXPECT_THAT(error, StartsWith("sequences[0].length: at most 3 time steps"));
  EXPECT_THAT(error, HasSubstr("--max_steps_per_sequence"));
  EXPECT_THAT(error, HasSubstr("got 4"));
}

TEST_F(SequencesFromRequestTest, TooLongInferredLengthIsRejectedToo) {
  limits_.max_steps_per_sequence = 3;
  AddFeatures(request_, 0, std::vector<float>(12, 0.0f));
  EXPECT_THAT(Error(), StartsWith("sequences[0].length: at most 3 time steps"));
}

TEST_F(SequencesFromRequestTest, NonFiniteFeaturesAreRejectedByPosition) {
  AddFeatures(request_, 1, {1, 2, 3});
  AddFeatures(request_, 2, {1, 2, 3, 4, 5, std::nanf("")});
  const std::string error = Error();
  EXPECT_THAT(error, StartsWith("sequences[1].features[1][2] is nan"));
  EXPECT_THAT(error, HasSubstr("finite"));
}

// The field path is data on the status, for callers that map it (the Open
// Inference codec names its own tensors).
TEST_F(SequencesFromRequestTest, ErrorsCarryTheirFieldPath) {
  AddFeatures(request_, 1, {1, 2, 3});
  AddFeatures(request_, 2, {1, 2, 3, 4, 5, std::nanf("")});
  EXPECT_EQ(ErrorField(Convert().status()), "sequences[1].features[1][2]");
}

// Validated once, here: Evaluate trusts the mark and does not check again.
TEST_F(SequencesFromRequestTest, SequencesComeBackMarkedValidated) {
  AddFeatures(request_, 2, std::vector<float>(6, 0.5f));
  AddFeatures(request_, 1, {1, 2, 3});
  absl::StatusOr<std::vector<SequenceInput>> got = Convert();
  ASSERT_TRUE(got.ok()) << got.status();
  for (const SequenceInput& in : *got) {
    EXPECT_TRUE(in.validated.Covers(*model_, limits_.allow_non_finite));
  }
  auto other = FeatureModel();
  EXPECT_FALSE((*got)[0].validated.Covers(*other, false));
}

TEST_F(SequencesFromRequestTest, InfiniteFeaturesAreRejected) {
  AddFeatures(request_, 1, {std::numeric_limits<float>::infinity(), 2, 3});
  EXPECT_THAT(Error(), StartsWith("sequences[0].features[0][0] is inf"));
}

TEST_F(SequencesFromRequestTest, NonFiniteValuesPassWhenAllowed) {
  limits_.allow_non_finite = true;
  v1::Sequence* s = AddFeatures(
      request_, 1, {std::nanf(""), std::numeric_limits<float>::infinity(), 3});
  for (int k = 0; k < 4; ++k) AddState(s, {4}, {std::nanf(""), 0, 0, 0});
  EXPECT_TRUE(Convert().ok());
}

TEST_F(SequencesFromRequestTest, NonFiniteStateIsRejectedByPosition) {
  v1::Sequence* s = AddFeatures(request_, 1, {1, 2, 3});
  AddState(s, {4}, {0, 0, 0, 0});
  AddState(s, {4}, {0, std::nanf(""), 0, 0});
  AddState(s, {4}, {0, 0, 0, 0});
  AddState(s, {4}, {0, 0, 0, 0});
  EXPECT_THAT(Error(), StartsWith("sequences[0].initial_state[1][1] is nan"));
}

TEST_F(SequencesFromRequestTest, MatrixShapedStateIsRejectedWithItsShape) {
  v1::Sequence* s = AddFeatures(request_, 1, {1, 2, 3});
  AddState(s, {2, 2}, {0, 0, 0, 0});
  EXPECT_EQ(Error(),
            "sequences[0].initial_state[0]: expected shape [units], got "
            "shape [2, 2] with 4 values");
}

TEST_F(SequencesFromRequestTest, StateShapeDisagreeingWithItsValuesIsRejected) {
  v1::Sequence* s = AddFeatures(request_, 1, {1, 2, 3});
  AddState(s, {4}, {0, 0, 0, 0});
  AddState(s, {4}, {0, 0, 0});
  EXPECT_EQ(Error(),
            "sequences[0].initial_state[1]: expected shape [units], got "
            "shape [4] with 3 values");
}

TEST_F(SequencesFromRequestTest, WrongNumberOfStatesListsTheExpectedOnes) {
  v1::Sequence* s = AddFeatures(request_, 1, {1, 2, 3});
  AddState(s, {4}, {0, 0, 0, 0});
  AddState(s, {4}, {0, 0, 0, 0});
  const std::string error = Error();
  EXPECT_THAT(error, StartsWith("sequences[0].initial_state: expected 4 "
                                "tensors (forward h [4], forward c [4], "
                                "backward h [4], backward c [4]"));
  EXPECT_THAT(error, HasSubstr("got 2"));
}

TEST_F(SequencesFromRequestTest, WrongStateSizeGivesExpectedAndGiven) {
  v1::Sequence* s = AddFeatures(request_, 1, {1, 2, 3});
  AddState(s, {4}, {0, 0, 0, 0});
  AddState(s, {4}, {0, 0, 0, 0});
  AddState(s, {3}, {0, 0, 0});
  AddState(s, {4}, {0, 0, 0, 0});
  EXPECT_EQ(Error(),
            "sequences[0].initial_state[2] (backward h): expected [4] values, "
            "got 3");
}

TEST_F(SequencesFromRequestTest, TokenIdsForAFeatureModelAreRejected) {
  request_.set_model_name("example");
  v1::Sequence* s = AddFeatures(request_, 1, {1, 2, 3});
  s->add_token_ids(1);
  EXPECT_EQ(Error(),
            "sequences[0]: model 'example' takes features (3 floats per time "
            "step), but the request sent token_ids");
  // Token ids alone, with the length left to infer.
  request_.clear_sequences();
  request_.add_sequences()->add_token_ids(1);
  EXPECT_EQ(Error(),
            "sequences[0]: model 'example' takes features (3 floats per time "
            "step), but the request sent token_ids");
}

TEST_F(SequencesFromRequestTest, FeaturesForATokenModelAreRejected) {
  model_ = TokenModel();
  request_.set_model_name("brackets");
  v1::Sequence* s = request_.add_sequences();
  s->set_length(1);
  s->add_token_ids(1);
  s->add_features(0.5f);
  EXPECT_EQ(Error(),
            "sequences[0]: model 'brackets' takes token_ids (an Embedding "
            "input), but the request sent features");
}

TEST_F(SequencesFromRequestTest, FeaturesAloneForATokenModelNameTheMixUp) {
  // Reported: with the length left to infer, this said "length must be at
  // least 1 time step; was 0", which names the wrong problem.
  model_ = TokenModel();
  request_.set_model_name("brackets");
  request_.add_sequences();  // a good one first
  request_.mutable_sequences(0)->add_token_ids(1);
  AddFeatures(request_, 0, {0.5f, 0.25f, 1.0f, 2.0f});
  EXPECT_EQ(Error(),
            "sequences[1]: model 'brackets' takes token_ids (an Embedding "
            "input), but the request sent features");
}

TEST_F(SequencesFromRequestTest, ModelNameInTheKindMessageIsQuoted) {
  model_ = TokenModel();
  request_.set_model_name(std::string(500, 'n') + "\n");
  AddFeatures(request_, 0, {0.5f});
  const std::string error = Error();
  EXPECT_THAT(error, HasSubstr("model '" + std::string(100, 'n') +
                               "'... (501 bytes) takes token_ids"));
  EXPECT_LT(error.size(), 300u);
  // Without a model name (a caller that did not set it).
  request_.clear_model_name();
  EXPECT_THAT(Error(), HasSubstr("sequences[0]: the model takes token_ids"));
}

TEST_F(SequencesFromRequestTest, TokenIdOutsideTheVocabularyIsRejected) {
  model_ = TokenModel();
  v1::Sequence* s = request_.add_sequences();
  for (int id : {1, 2, 10}) s->add_token_ids(id);
  EXPECT_EQ(Error(),
            "sequences[0].token_ids[2] = 10 is outside the vocabulary [0, 10)");
}

TEST_F(SequencesFromRequestTest, WrongTokenCountGivesExpectedAndGiven) {
  model_ = TokenModel();
  v1::Sequence* s = request_.add_sequences();
  s->set_length(3);
  s->add_token_ids(1);
  EXPECT_EQ(Error(),
            "sequences[0].token_ids: expected 3 ids (one per time step), got "
            "1");
}

TEST_F(SequencesFromRequestTest, ConvertedSequencesEvaluate) {
  std::mt19937 rng(5);
  AddFeatures(request_, 3, RandomValues(rng, 9));
  AddFeatures(request_, 0, RandomValues(rng, 6));
  absl::StatusOr<std::vector<SequenceInput>> inputs = Convert();
  ASSERT_TRUE(inputs.ok()) << inputs.status();
  auto pool = ThreadPool::Create({});
  ASSERT_TRUE(pool.ok());
  auto results = Evaluate(*model_, *inputs,
                          EvalOptionsFromRequest(request_, limits_), **pool);
  ASSERT_TRUE(results.ok()) << results.status();
  EXPECT_EQ(results->size(), 2u);
}

TEST(EvalOptionsFromRequestTest, OutputsSelectWhatIsReturned) {
  RequestLimits limits;
  v1::PredictRequest request;
  EvalOptions merged = EvalOptionsFromRequest(request, limits);
  EXPECT_TRUE(merged.output);
  EXPECT_FALSE(merged.directions);
  EXPECT_FALSE(merged.states);
  EXPECT_FALSE(merged.allow_non_finite);

  request.set_outputs(v1::OUTPUT_SELECTION_DIRECTIONS);
  EvalOptions directions = EvalOptionsFromRequest(request, limits);
  EXPECT_FALSE(directions.output);
  EXPECT_TRUE(directions.directions);

  request.set_outputs(v1::OUTPUT_SELECTION_BOTH);
  EvalOptions both = EvalOptionsFromRequest(request, limits);
  EXPECT_TRUE(both.output);
  EXPECT_TRUE(both.directions);
}

TEST(EvalOptionsFromRequestTest, StatesAndNonFiniteFollowRequestAndLimits) {
  RequestLimits limits;
  limits.allow_non_finite = true;
  v1::PredictRequest request;
  request.set_return_states(true);
  EvalOptions options = EvalOptionsFromRequest(request, limits);
  EXPECT_TRUE(options.states);
  EXPECT_TRUE(options.allow_non_finite);
}

void ExpectTensorEq(const v1::Tensor& proto, const Tensor& expected) {
  EXPECT_THAT(proto.shape(), ElementsAreArray(expected.shape));
  EXPECT_THAT(proto.values(), ElementsAreArray(expected.values));
}

TEST(ResultsToResponseTest, CopiesEveryTensorAndNamesEachLayersStates) {
  std::shared_ptr<const Model> model = FeatureModel();
  std::mt19937 rng(9);
  const std::vector<float> a = RandomValues(rng, 6), b = RandomValues(rng, 9);
  const std::vector<SequenceInput> inputs = {SequenceInput{2, a, {}, {}},
                                             SequenceInput{3, b, {}, {}}};
  auto pool = ThreadPool::Create({});
  ASSERT_TRUE(pool.ok());
  EvalOptions options;
  options.directions = true;
  options.states = true;
  auto results = Evaluate(*model, inputs, options, **pool);
  ASSERT_TRUE(results.ok()) << results.status();
  const std::vector<SequenceResult> expected = *results;

  v1::PredictResponse response;
  ResultsToResponse(*model, *std::move(results), &response);
  ASSERT_EQ(response.sequences_size(), 2);
  for (int i = 0; i < 2; ++i) {
    SCOPED_TRACE(i);
    const v1::SequenceOutput& out = response.sequences(i);
    ExpectTensorEq(out.output(), expected[i].output);
    EXPECT_THAT(out.output().shape(), ElementsAre(5));
    ExpectTensorEq(out.forward(), expected[i].forward);
    ExpectTensorEq(out.backward(), expected[i].backward);
    ASSERT_EQ(out.states_size(), 2);
    EXPECT_EQ(out.states(0).layer(), "bi_lstm");
    EXPECT_EQ(out.states(1).layer(), "bi_gru");
    ASSERT_EQ(out.states(0).states_size(), 4);  // LSTM: h, c per direction
    ASSERT_EQ(out.states(1).states_size(), 2);  // GRU: h per direction
    for (int l = 0; l < 2; ++l) {
      for (int k = 0; k < out.states(l).states_size(); ++k) {
        ExpectTensorEq(out.states(l).states(k), expected[i].states[l][k]);
      }
    }
  }
}

TEST(ResultsToResponseTest, LeavesOutWhatWasNotComputed) {
  std::shared_ptr<const Model> model = FeatureModel();
  SequenceResult result;
  result.output = Tensor{{5}, {1, 2, 3, 4, 5}};
  std::vector<SequenceResult> results;
  results.push_back(result);
  v1::PredictResponse response;
  ResultsToResponse(*model, std::move(results), &response);
  ASSERT_EQ(response.sequences_size(), 1);
  EXPECT_TRUE(response.sequences(0).has_output());
  EXPECT_FALSE(response.sequences(0).has_forward());
  EXPECT_FALSE(response.sequences(0).has_backward());
  EXPECT_EQ(response.sequences(0).states_size(), 0);
}

TEST(ResultsToResponseTest, MergeNoneGivesDirectionsWithoutOutput) {
  std::shared_ptr<const Model> model = MergeNoneModel();
  const std::vector<float> x = {1, 2, 0, 0, 3, 4};  // step 1 is masked
  auto pool = ThreadPool::Create({});
  ASSERT_TRUE(pool.ok());
  auto results =
      Evaluate(*model, {SequenceInput{3, x, {}, {}}}, EvalOptions(), **pool);
  ASSERT_TRUE(results.ok()) << results.status();
  v1::PredictResponse response;
  ResultsToResponse(*model, *std::move(results), &response);
  ASSERT_EQ(response.sequences_size(), 1);
  EXPECT_FALSE(response.sequences(0).has_output());
  EXPECT_THAT(response.sequences(0).forward().shape(), ElementsAre(3, 3));
  EXPECT_THAT(response.sequences(0).backward().shape(), ElementsAre(3, 3));
}

// The specs of `specs` as (name, dtype, shape) strings, for compact checks.
std::vector<std::string> Specs(
    const google::protobuf::RepeatedPtrField<v1::TensorSpec>& specs) {
  std::vector<std::string> out;
  for (const v1::TensorSpec& s : specs) {
    out.push_back(s.name() + " " + s.dtype() + " " +
                  ShapeString({s.shape().begin(), s.shape().end()}));
  }
  return out;
}

ServableModel Servable(std::shared_ptr<const Model> model) {
  ServableModel servable;
  servable.name = "m";
  servable.version = 4;
  servable.model = std::move(model);
  servable.batching.max_batch_size = 16;
  servable.batching.max_batch_steps = 4096;
  servable.batching.max_queue_delay_us = 300;
  servable.batching.max_queue_size = 50;
  return servable;
}

TEST(ModelMetadataToProtoTest, DescribesAFeatureModel) {
  RequestLimits limits;
  limits.max_sequences_per_request = 7;
  limits.max_steps_per_sequence = 99;
  v1::GetModelMetadataResponse response;
  ModelMetadataToProto(Servable(FeatureModel()), {2, 4}, true, limits,
                       &response);
  EXPECT_EQ(response.model_name(), "m");
  EXPECT_EQ(response.model_version(), 4);
  EXPECT_THAT(response.available_versions(), ElementsAre(2, 4));
  EXPECT_THAT(Specs(response.inputs()),
              ElementsAre("features float32 [-1, 3]",
                          "initial_state/bi_lstm/forward_h float32 [4]",
                          "initial_state/bi_lstm/forward_c float32 [4]",
                          "initial_state/bi_lstm/backward_h float32 [4]",
                          "initial_state/bi_lstm/backward_c float32 [4]"));
  // The head takes the last step: no time axis on any output.
  EXPECT_THAT(
      Specs(response.outputs()),
      ElementsAre("output float32 [5]", "forward float32 [2]",
                  "backward float32 [2]", "state/bi_lstm/forward_h float32 [4]",
                  "state/bi_lstm/forward_c float32 [4]",
                  "state/bi_lstm/backward_h float32 [4]",
                  "state/bi_lstm/backward_c float32 [4]",
                  "state/bi_gru/forward_h float32 [2]",
                  "state/bi_gru/backward_h float32 [2]"));

  ASSERT_EQ(response.layers_size(), 3);
  const v1::LayerSummary& lstm = response.layers(0);
  EXPECT_EQ(lstm.name(), "bi_lstm");
  EXPECT_EQ(lstm.type(), "Bidirectional");
  EXPECT_EQ(lstm.cell(), "LSTM");
  EXPECT_EQ(lstm.units(), 4);
  EXPECT_EQ(lstm.merge_mode(), "concat");
  EXPECT_TRUE(lstm.return_sequences());
  EXPECT_EQ(lstm.output_size(), 8);
  // Per direction: kernel 3 x 16, recurrent 4 x 16, bias 16.
  EXPECT_EQ(lstm.parameters(), 2 * (3 * 16 + 4 * 16 + 16));
  const v1::LayerSummary& gru = response.layers(1);
  EXPECT_EQ(gru.cell(), "GRU");
  EXPECT_EQ(gru.merge_mode(), "sum");
  EXPECT_FALSE(gru.return_sequences());
  EXPECT_EQ(gru.output_size(), 2);
  // Per direction: kernel 8 x 6, recurrent 2 x 6, two bias rows of 6.
  EXPECT_EQ(gru.parameters(), 2 * (8 * 6 + 2 * 6 + 2 * 6));
  const v1::LayerSummary& head = response.layers(2);
  EXPECT_EQ(head.name(), "head");
  EXPECT_EQ(head.type(), "Dense");
  EXPECT_EQ(head.units(), 5);
  EXPECT_EQ(head.output_size(), 5);
  EXPECT_EQ(head.parameters(), 2 * 5 + 5);

  EXPECT_TRUE(response.batching().enabled());
  EXPECT_EQ(response.batching().max_batch_size(), 16);
  EXPECT_EQ(response.batching().max_batch_steps(), 4096);
  EXPECT_EQ(response.batching().max_queue_delay_us(), 300);
  EXPECT_EQ(response.batching().max_queue_size(), 50);
  EXPECT_EQ(response.max_sequences_per_request(), 7);
  EXPECT_EQ(response.max_steps_per_sequence(), 99);
  EXPECT_EQ(response.declared_time_steps(), 0);
}

// A source model's fixed time dimension (Keras [None, 200, 3]) is reported
// on its own; the served input shape keeps -1, since any length is served.
TEST(ModelMetadataToProtoTest, DeclaredTimeStepsIsReportedApart) {
  v1::GetModelMetadataResponse response;
  ModelMetadataToProto(Servable(FeatureModel(200)), {4}, false, RequestLimits(),
                       &response);
  EXPECT_EQ(response.declared_time_steps(), 200);
  ASSERT_GE(response.inputs_size(), 1);
  EXPECT_EQ(Specs(response.inputs())[0], "features float32 [-1, 3]");
}

TEST(ModelMetadataToProtoTest, SequenceOutputsHaveATimeAxisOfMinusOne) {
  v1::GetModelMetadataResponse response;
  ModelMetadataToProto(Servable(MergeNoneModel()), {4}, false, RequestLimits(),
                       &response);
  EXPECT_THAT(Specs(response.inputs()),
              ElementsAre("features float32 [-1, 2]",
                          "initial_state/bi/forward_h float32 [3]",
                          "initial_state/bi/backward_h float32 [3]"));
  // Merge mode none: the directions are the outputs, and there is no
  // merged "output".
  EXPECT_THAT(Specs(response.outputs()),
              ElementsAre("forward float32 [-1, 3]", "backward float32 [-1, 3]",
                          "state/bi/forward_h float32 [3]",
                          "state/bi/backward_h float32 [3]"));
  ASSERT_EQ(response.layers_size(), 2);
  EXPECT_EQ(response.layers(0).type(), "Masking");
  EXPECT_EQ(response.layers(0).output_size(), 2);
  EXPECT_EQ(response.layers(1).cell(), "SimpleRNN/GRU");
  EXPECT_EQ(response.layers(1).merge_mode(), "none");
  EXPECT_FALSE(response.batching().enabled());
}

TEST(ModelMetadataToProtoTest, DescribesATokenModel) {
  v1::GetModelMetadataResponse response;
  ModelMetadataToProto(Servable(TokenModel()), {4}, false, RequestLimits(),
                       &response);
  ASSERT_GE(response.inputs_size(), 1);
  EXPECT_THAT(Specs(response.inputs()),
              ElementsAre("token_ids int32 [-1]",
                          "initial_state/bi/forward_h float32 [2]",
                          "initial_state/bi/backward_h float32 [2]"));
  EXPECT_THAT(response.inputs(0).description(), HasSubstr("[0, 10)"));
  EXPECT_THAT(
      Specs(response.outputs()),
      ElementsAre("output float32 [-1, 4]", "forward float32 [-1, 2]",
                  "backward float32 [-1, 2]", "state/bi/forward_h float32 [2]",
                  "state/bi/backward_h float32 [2]"));
  ASSERT_EQ(response.layers_size(), 2);
  EXPECT_EQ(response.layers(0).name(), "embed");
  EXPECT_EQ(response.layers(0).type(), "Embedding");
  EXPECT_EQ(response.layers(0).output_size(), 4);
  EXPECT_EQ(response.layers(0).parameters(), 40);
  EXPECT_TRUE(response.layers(0).return_sequences());
}

// features [T, 3] -> Bidirectional(LSTM 4, sequences, concat) ->
// LayerNormalization -> Activation relu -> GlobalAveragePooling1D ->
// BatchNormalization: one vector of 8 per sequence.
TEST(ModelMetadataToProtoTest, SummarizesChainLayersAndPooledOutputs) {
  std::mt19937 rng(3);
  ModelSpec spec;
  spec.input_dim = 3;
  spec.layers.push_back(
      Bidirectional(rng, "bi", CellType::kLstm, 4, 3, true, "concat"));
  LayerNormalizationSpec ln{.name = "ln"};
  ln.gamma = RandomWeights(rng, {8});
  ln.beta = RandomWeights(rng, {8});
  spec.layers.push_back(ln);
  spec.layers.push_back(ActivationSpec{"act", "relu"});
  spec.layers.push_back(GlobalPoolingSpec{"pool", PoolingType::kAverage});
  BatchNormalizationSpec bn{.name = "bn", .center = false};
  bn.gamma = RandomWeights(rng, {8});
  bn.moving_mean = RandomWeights(rng, {8});
  bn.moving_variance = Tensor{{8}, std::vector<float>(8, 1.0f)};
  spec.layers.push_back(bn);
  v1::GetModelMetadataResponse response;
  ModelMetadataToProto(Servable(Build(spec)), {4}, false, RequestLimits(),
                       &response);
  EXPECT_EQ(Specs(response.outputs()).front(), "output float32 [8]");
  ASSERT_EQ(response.layers_size(), 5);
  const char* types[] = {"Bidirectional", "LayerNormalization", "Activation",
                         "GlobalAveragePooling1D", "BatchNormalization"};
  const int64_t parameters[] = {2 * (3 * 16 + 4 * 16 + 16), 16, 0, 0, 24};
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(response.layers(i).type(), types[i]);
    EXPECT_EQ(response.layers(i).output_size(), 8) << i;
    EXPECT_EQ(response.layers(i).parameters(), parameters[i]) << i;
  }
  EXPECT_EQ(response.layers(3).name(), "pool");
}

TEST(ModelStatusesToProtoTest, MapsEveryStateAndField) {
  ModelStatus status;
  status.name = "m";
  status.version_policy = "latest:2";
  status.config_error = "config.pbtxt: line 1, column 3: oops";
  const VersionState states[] = {
      VersionState::kLoading, VersionState::kAvailable, VersionState::kFailed,
      VersionState::kUnloading};
  for (int i = 0; i < 4; ++i) {
    status.versions.push_back(
        VersionStatus{i + 1, states[i], i == 2 ? "bad weights" : "",
                      absl::FromUnixMillis(1700000000000 + i)});
  }
  ModelStatus empty;
  empty.name = "n";
  empty.version_policy = "all";

  v1::ListModelsResponse response;
  ModelStatusesToProto({status, empty}, &response);
  ASSERT_EQ(response.models_size(), 2);
  const v1::ModelStatus& m = response.models(0);
  EXPECT_EQ(m.name(), "m");
  EXPECT_EQ(m.version_policy(), "latest:2");
  EXPECT_EQ(m.config_error(), "config.pbtxt: line 1, column 3: oops");
  ASSERT_EQ(m.versions_size(), 4);
  EXPECT_EQ(m.versions(0).state(), v1::ModelVersionStatus::STATE_LOADING);
  EXPECT_EQ(m.versions(1).state(), v1::ModelVersionStatus::STATE_AVAILABLE);
  EXPECT_EQ(m.versions(2).state(), v1::ModelVersionStatus::STATE_FAILED);
  EXPECT_EQ(m.versions(3).state(), v1::ModelVersionStatus::STATE_UNLOADING);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(m.versions(i).version(), i + 1);
    EXPECT_EQ(m.versions(i).since_unix_ms(), 1700000000000 + i);
  }
  EXPECT_EQ(m.versions(2).reason(), "bad weights");
  EXPECT_EQ(m.versions(0).reason(), "");
  EXPECT_EQ(response.models(1).name(), "n");
  EXPECT_EQ(response.models(1).version_policy(), "all");
  EXPECT_EQ(response.models(1).config_error(), "");
  EXPECT_EQ(response.models(1).versions_size(), 0);
}

TEST(ModelStatusesToProtoTest, NoModelsGiveAnEmptyList) {
  v1::ListModelsResponse response;
  ModelStatusesToProto({}, &response);
  EXPECT_EQ(response.models_size(), 0);
}

}  // namespace
}  // namespace biserve
