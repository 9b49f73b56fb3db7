#include "core/model/model.h"

#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/random_model.h"

namespace biserve {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using testing::RandomWeights;

RnnWeightsSpec Weights(std::mt19937& rng, int input, int units, int gates,
                       std::vector<int64_t> bias_shape) {
  RnnWeightsSpec w;
  w.kernel = RandomWeights(rng, {input, gates * units});
  w.recurrent_kernel = RandomWeights(rng, {units, gates * units});
  if (!bias_shape.empty()) w.bias = RandomWeights(rng, bias_shape);
  return w;
}

// A valid model: input 4 -> Bidirectional(LSTM 3, concat, sequences) ->
// Bidirectional(GRU 2, sum) -> Dense(5, softmax). Tests break one thing.
class ModelValidationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    spec_.name = "m";
    spec_.input_dim = 4;
    BidirectionalSpec first;
    first.name = "bi1";
    first.layer.name = "lstm";
    first.layer.cell = CellType::kLstm;
    first.layer.units = 3;
    first.layer.return_sequences = true;
    first.layer.weights = Weights(rng_, 4, 3, 4, {12});
    first.backward_weights = Weights(rng_, 4, 3, 4, {12});
    spec_.layers.push_back(first);
    BidirectionalSpec second;
    second.name = "bi2";
    second.layer.cell = CellType::kGru;
    second.layer.units = 2;
    second.layer.return_sequences = true;
    second.layer.weights = Weights(rng_, 6, 2, 3, {2, 6});
    second.backward_weights = Weights(rng_, 6, 2, 3, {2, 6});
    second.merge_mode = "sum";
    spec_.layers.push_back(second);
    DenseSpec head;
    head.name = "head";
    head.units = 5;
    head.activation = "softmax";
    head.kernel = RandomWeights(rng_, {2, 5});
    head.bias = RandomWeights(rng_, {5});
    spec_.layers.push_back(head);
  }

  BidirectionalSpec& bi(int i) {
    return std::get<BidirectionalSpec>(spec_.layers[i]);
  }
  DenseSpec& head() { return std::get<DenseSpec>(spec_.layers[2]); }

  // Makes bi1's backward an explicit layer equal to its forward one, as
  // Keras would build it.
  RnnLayerSpec& ExplicitBackward() {
    RnnLayerSpec back = bi(0).layer;
    back.name = "backward_lstm";
    back.go_backwards = true;
    bi(0).backward_weights.reset();
    bi(0).backward_layer = back;
    return *bi(0).backward_layer;
  }

  std::string Error() {
    auto model = Model::Create(spec_);
    EXPECT_FALSE(model.ok());
    if (model.ok()) return "";
    EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(model.status().message());
  }

  std::mt19937 rng_{5};
  ModelSpec spec_;
};

TEST_F(ModelValidationTest, ValidModelLoadsWithItsShape) {
  auto model = Model::Create(spec_);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->input_dim(), 4);
  EXPECT_EQ((*model)->output_size(), 5);
  EXPECT_TRUE((*model)->returns_sequences());
  EXPECT_EQ((*model)->bidirectional_count(), 2);
  const BidirectionalLayer& b = (*model)->bidirectional(0);
  EXPECT_EQ(b.forward.activation, Activation::kTanh);  // Keras defaults
  EXPECT_EQ(b.forward.recurrent_activation, Activation::kSigmoid);
  EXPECT_TRUE(b.backward.go_backwards);
  EXPECT_TRUE((*model)->bidirectional(1).forward.reset_after);
  EXPECT_EQ((*model)->declared_time_steps(), 0);
}

TEST_F(ModelValidationTest, DeclaredTimeStepsIsKeptAndMustNotBeNegative) {
  spec_.declared_time_steps = 200;
  auto model = Model::Create(spec_);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->declared_time_steps(), 200);
  spec_.declared_time_steps = -1;
  EXPECT_THAT(Error(), HasSubstr("declared_time_steps must not be negative, "
                                 "got -1"));
}

TEST_F(ModelValidationTest, WrongKernelShapeNamesLayerFieldAndShapes) {
  bi(0).layer.weights.kernel = RandomWeights(rng_, {4, 8});
  EXPECT_THAT(
      Error(),
      AllOf(HasSubstr("layers[0] 'bi1' layer"),
            HasSubstr("weights.kernel: expected shape [4, 12] "
                      "([input_size, 4 * units] for LSTM), got [4, 8]")));
}

TEST_F(ModelValidationTest, WrongRecurrentKernelShape) {
  bi(0).backward_weights->recurrent_kernel = RandomWeights(rng_, {3, 3});
  EXPECT_THAT(Error(), AllOf(HasSubstr("backward_weights"),
                             HasSubstr("weights.recurrent_kernel: expected "
                                       "shape [3, 12]")));
}

TEST_F(ModelValidationTest, ResetAfterGruNeedsTwoBiasRows) {
  bi(1).layer.weights.bias = RandomWeights(rng_, {6});
  EXPECT_THAT(Error(), HasSubstr("weights.bias: expected shape [2, 6] ([2, 3 "
                                 "* units] for GRU with reset_after"));
}

TEST_F(ModelValidationTest, ResetBeforeGruNeedsOneBiasRow) {
  bi(1).layer.reset_after = false;
  bi(1).backward_weights->bias = RandomWeights(rng_, {6});
  EXPECT_THAT(Error(), HasSubstr("weights.bias: expected shape [6] ([3 * "
                                 "units] for GRU with reset_after = false), "
                                 "got [2, 6]"));
}

TEST_F(ModelValidationTest, MissingTensor) {
  bi(0).layer.weights.recurrent_kernel = Tensor();
  EXPECT_THAT(Error(), HasSubstr("weights.recurrent_kernel is missing; "
                                 "expected shape [3, 12]"));
}

TEST_F(ModelValidationTest, ExtraBiasWhenUseBiasIsFalse) {
  bi(0).layer.use_bias = false;
  EXPECT_THAT(Error(), HasSubstr("weights.bias is present (shape [12]) but "
                                 "must be absent: use_bias is false"));
}

TEST_F(ModelValidationTest, ValueCountMustMatchShape) {
  bi(0).layer.weights.bias.values.pop_back();
  EXPECT_THAT(Error(), HasSubstr("weights.bias: shape [12] needs 12 values, "
                                 "got 11"));
}

TEST_F(ModelValidationTest, NonFiniteWeight) {
  head().kernel.values[3] = NAN;
  EXPECT_THAT(Error(), AllOf(HasSubstr("layers[2] 'head'"),
                             HasSubstr("kernel: value 3 is nan")));
}

TEST_F(ModelValidationTest, UnknownActivation) {
  bi(0).layer.activation = "tanhh";
  EXPECT_THAT(Error(), AllOf(HasSubstr("activation: unknown activation "
                                       "'tanhh'; expected one of: linear, "),
                             HasSubstr("hard_sigmoid_keras3")));
}

TEST_F(ModelValidationTest, UnknownRecurrentActivation) {
  bi(1).layer.recurrent_activation = "soft";
  EXPECT_THAT(Error(), HasSubstr("recurrent_activation: unknown activation "
                                 "'soft'"));
}

TEST_F(ModelValidationTest, UnknownDenseActivation) {
  head().activation = "argmax";
  EXPECT_THAT(Error(), HasSubstr("layers[2] 'head': activation: unknown "
                                 "activation 'argmax'"));
}

TEST_F(ModelValidationTest, InvalidMergeMode) {
  bi(0).merge_mode = "max";
  EXPECT_THAT(Error(), HasSubstr("merge_mode: invalid merge mode 'max'; "
                                 "expected one of concat, sum, mul, ave, "
                                 "none"));
}

TEST_F(ModelValidationTest, BackwardLayerWithSameGoBackwards) {
  ExplicitBackward().go_backwards = false;
  EXPECT_THAT(Error(), HasSubstr("forward and backward layers must have "
                                 "different go_backwards values; both are "
                                 "false"));
}

TEST_F(ModelValidationTest, BackwardLayerWithOtherReturnSequences) {
  ExplicitBackward().return_sequences = false;
  EXPECT_THAT(Error(), HasSubstr("same value for return_sequences; got true "
                                 "for the forward layer and false for the "
                                 "backward layer"));
}

TEST_F(ModelValidationTest, BackwardLayerWithOtherReturnState) {
  ExplicitBackward().return_state = true;
  EXPECT_THAT(Error(), HasSubstr("same value for return_state; got false for "
                                 "the forward layer and true"));
}

TEST_F(ModelValidationTest, BackwardLayerWithOtherStateful) {
  ExplicitBackward().stateful = true;
  EXPECT_THAT(Error(), HasSubstr("same value for stateful"));
}

TEST_F(ModelValidationTest, ValidExplicitBackwardLayerOfAnotherCell) {
  RnnLayerSpec& back = ExplicitBackward();
  back.cell = CellType::kSimpleRnn;
  back.units = 5;
  back.activation = "relu";
  back.weights = Weights(rng_, 4, 5, 1, {5});
  // concat allows directions of different sizes: 3 + 5.
  bi(1).layer.weights = Weights(rng_, 8, 2, 3, {2, 6});
  bi(1).backward_weights = Weights(rng_, 8, 2, 3, {2, 6});
  auto model = Model::Create(spec_);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->bidirectional(0).backward.activation, Activation::kRelu);
  EXPECT_EQ((*model)->bidirectional(0).output_size(), 8);
}

// Keras' state order, owned by the model: forward h, forward c (LSTM),
// backward h, backward c (LSTM).
TEST_F(ModelValidationTest, StatesAreInKerasOrderWithTheirDirectionAndUnits) {
  auto model = Model::Create(spec_);
  ASSERT_TRUE(model.ok()) << model.status();
  const BidirectionalLayer& lstm = (*model)->bidirectional(0);
  ASSERT_EQ(lstm.states.size(), 4u);
  const char* const names[] = {"forward_h", "forward_c", "backward_h",
                               "backward_c"};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(lstm.states[i].name, names[i]);
    EXPECT_EQ(lstm.states[i].direction,
              i < 2 ? Direction::kForward : Direction::kBackward);
    EXPECT_EQ(lstm.states[i].kind, i % 2 == 0 ? StateKind::kH : StateKind::kC);
    EXPECT_EQ(lstm.states[i].units, 3);
  }
  EXPECT_EQ(lstm.state_count(), 4);
  EXPECT_EQ(lstm.state_index(Direction::kBackward, StateKind::kC), 3);
  const BidirectionalLayer& gru = (*model)->bidirectional(1);
  ASSERT_EQ(gru.states.size(), 2u);
  EXPECT_EQ(gru.states[0].name, "forward_h");
  EXPECT_EQ(gru.states[1].name, "backward_h");
  EXPECT_EQ(gru.state_index(Direction::kBackward, StateKind::kH), 1);
  EXPECT_EQ(gru.state_index(Direction::kForward, StateKind::kC), -1);
}

TEST_F(ModelValidationTest, StatesFollowEachDirectionsOwnCell) {
  RnnLayerSpec& back = ExplicitBackward();
  back.cell = CellType::kSimpleRnn;
  back.units = 5;
  back.weights = Weights(rng_, 4, 5, 1, {5});
  bi(1).layer.weights = Weights(rng_, 8, 2, 3, {2, 6});
  bi(1).backward_weights = Weights(rng_, 8, 2, 3, {2, 6});
  auto model = Model::Create(spec_);
  ASSERT_TRUE(model.ok()) << model.status();
  const BidirectionalLayer& b = (*model)->bidirectional(0);
  ASSERT_EQ(b.states.size(), 3u);
  EXPECT_EQ(b.states[0].name, "forward_h");
  EXPECT_EQ(b.states[1].name, "forward_c");
  EXPECT_EQ(b.states[2].name, "backward_h");
  EXPECT_EQ(b.states[2].units, 5);
  EXPECT_EQ(&b.direction(Direction::kBackward), &b.backward);
}

TEST_F(ModelValidationTest, StatefulIsRejectedWithAReason) {
  bi(0).layer.stateful = true;
  EXPECT_THAT(Error(), HasSubstr("stateful = true is not supported"));
}

TEST_F(ModelValidationTest, MergedDirectionsOfDifferentSizes) {
  RnnLayerSpec& back = ExplicitBackward();
  back.units = 2;
  back.weights = Weights(rng_, 4, 2, 4, {8});
  bi(0).merge_mode = "ave";
  EXPECT_THAT(Error(), HasSubstr("merge_mode 'ave' needs directions of the "
                                 "same size; forward has 3 units, backward "
                                 "has 2"));
}

TEST_F(ModelValidationTest, StackedInputSizeMismatch) {
  bi(0).merge_mode = "sum";  // output 3 wide, bi2 expects 6
  EXPECT_THAT(Error(), AllOf(HasSubstr("layers[1] 'bi2' layer"),
                             HasSubstr("weights.kernel: expected shape [3, "
                                       "6] ([input_size, 3 * units] for "
                                       "GRU), got [6, 6]")));
}

TEST_F(ModelValidationTest, DenseInputSizeMismatch) {
  head().kernel = RandomWeights(rng_, {4, 5});
  EXPECT_THAT(Error(), HasSubstr("layers[2] 'head': kernel: expected shape "
                                 "[2, 5] ([input_size, units]), got [4, 5]"));
}

TEST_F(ModelValidationTest, StackedLayerNeedsSequences) {
  bi(0).layer.return_sequences = false;
  EXPECT_THAT(Error(), HasSubstr("layers[1] 'bi2': a Bidirectional layer "
                                 "needs a sequence input"));
}

TEST_F(ModelValidationTest, MergeNoneMustBeLast) {
  bi(1).merge_mode = "none";
  EXPECT_THAT(Error(), HasSubstr("merge_mode 'none' returns the two "
                                 "directions separately, so it must be the "
                                 "last layer"));
}

TEST_F(ModelValidationTest, MissingBackwardDirection) {
  bi(0).backward_weights.reset();
  EXPECT_THAT(Error(), HasSubstr("the backward direction is missing"));
}

TEST_F(ModelValidationTest, CellNotSet) {
  bi(0).layer.cell = CellType::kUnspecified;
  EXPECT_THAT(Error(), HasSubstr("cell is not set"));
}

// RunDirection has no step for an unset cell: Create must stop it, in an
// explicit backward layer too.
TEST_F(ModelValidationTest, BackwardLayerCellNotSet) {
  ExplicitBackward().cell = CellType::kUnspecified;
  EXPECT_THAT(Error(),
              AllOf(HasSubstr("backward_layer"), HasSubstr("cell is not set")));
}

TEST_F(ModelValidationTest, UnitsMustBePositive) {
  bi(0).layer.units = 0;
  EXPECT_THAT(Error(), HasSubstr("units must be positive; was 0"));
}

TEST_F(ModelValidationTest, ResetAfterOnlyForGru) {
  bi(0).layer.reset_after = true;
  EXPECT_THAT(Error(), HasSubstr("reset_after is set but only GRU has it"));
}

TEST_F(ModelValidationTest, InputDimMustBePositive) {
  spec_.input_dim = 0;
  EXPECT_THAT(Error(), HasSubstr("model 'm': input_dim must be positive"));
}

TEST_F(ModelValidationTest, EmbeddingMustComeFirst) {
  spec_.layers.push_back(
      EmbeddingSpec{"emb", 3, 2, RandomWeights(rng_, {3, 2})});
  EXPECT_THAT(Error(), HasSubstr("layers[3] 'emb': an Embedding layer must be "
                                 "the first layer"));
}

TEST_F(ModelValidationTest, EmbeddingModelTakesTokenIds) {
  spec_.input_dim = 0;
  spec_.layers.insert(
      spec_.layers.begin(),
      EmbeddingSpec{"emb", 10, 4, RandomWeights(rng_, {10, 4})});
  auto model = Model::Create(spec_);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_TRUE((*model)->takes_token_ids());
}

TEST_F(ModelValidationTest, MaskingMustComeFirst) {
  spec_.layers.insert(spec_.layers.begin() + 1, MaskingSpec{"mask", 0.0f});
  EXPECT_THAT(Error(), HasSubstr("layers[1] 'mask': a Masking layer must be "
                                 "the first layer"));
}

TEST_F(ModelValidationTest, MaskingFirstSetsTheMaskValue) {
  spec_.layers.insert(spec_.layers.begin(), MaskingSpec{"mask", -1.0f});
  auto model = Model::Create(spec_);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->mask_value(), -1.0f);
  EXPECT_TRUE((*model)->masks_steps());
}

TEST_F(ModelValidationTest, LayerKindNotSet) {
  spec_.layers.push_back(std::monostate());
  EXPECT_THAT(Error(), HasSubstr("layers[3]: layer kind is not set"));
}

// Layer names name state tensors (state/<layer>/forward_h): an unnamed
// layer gets Keras' default, skipping names taken; two layers may not share
// one.
TEST_F(ModelValidationTest, UnnamedBidirectionalLayersGetKerasDefaultNames) {
  bi(0).name = "";
  bi(1).name = "bidirectional";
  auto model = Model::Create(spec_);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->bidirectional(0).name, "bidirectional_1");
  EXPECT_EQ((*model)->bidirectional(1).name, "bidirectional");
  bi(1).name = "";
  model = Model::Create(spec_);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->bidirectional(0).name, "bidirectional");
  EXPECT_EQ((*model)->bidirectional(1).name, "bidirectional_1");
}

TEST_F(ModelValidationTest, BidirectionalLayersNeedDistinctNames) {
  bi(1).name = bi(0).name;
  EXPECT_THAT(Error(),
              HasSubstr(absl::StrCat("layers[1] '", bi(0).name,
                                     "': has the same name as layers[0]")));
}

TEST_F(ModelValidationTest, NeedsABidirectionalLayer) {
  spec_.layers = {spec_.layers[2]};
  std::get<DenseSpec>(spec_.layers[0]).kernel = RandomWeights(rng_, {4, 5});
  EXPECT_THAT(Error(), HasSubstr("has no Bidirectional layer"));
}

// The chain layers, on the fixture's model (bi2 returns sequences of 2).
BatchNormalizationSpec BatchNorm(int features) {
  BatchNormalizationSpec bn;
  bn.name = "bn";
  bn.gamma = Tensor{{features}, std::vector<float>(features, 2.0f)};
  bn.beta = Tensor{{features}, std::vector<float>(features, 0.5f)};
  bn.moving_mean = Tensor{{features}, std::vector<float>(features, 1.0f)};
  bn.moving_variance = Tensor{{features}, std::vector<float>(features, 4.0f)};
  return bn;
}

TEST_F(ModelValidationTest, ChainLayersKeepTheWidthAndPoolingDropsTime) {
  spec_.layers.insert(spec_.layers.begin() + 2,
                      {ActivationSpec{"act", "relu"}, BatchNorm(2),
                       LayerNormalizationSpec{.name = "ln"},
                       GlobalPoolingSpec{"pool", PoolingType::kAverage}});
  std::get<LayerNormalizationSpec>(spec_.layers[4]).gamma =
      RandomWeights(rng_, {2});
  std::get<LayerNormalizationSpec>(spec_.layers[4]).beta =
      RandomWeights(rng_, {2});
  auto model = Model::Create(spec_);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_FALSE((*model)->returns_sequences());
  EXPECT_EQ((*model)->output_size(), 5);
  EXPECT_EQ((*model)->layers().size(), 7u);
  EXPECT_EQ((*model)->padding_step_output().size(), 0);
}

TEST_F(ModelValidationTest, BatchNormalizationFoldsKerasFormula) {
  BatchNormalizationSpec bn = BatchNorm(2);
  bn.epsilon = 0.0f + 1e-3f;
  spec_.layers.insert(spec_.layers.begin() + 2, bn);
  auto model = Model::Create(spec_);
  ASSERT_TRUE(model.ok()) << model.status();
  const auto& layer = std::get<BatchNormalizationLayer>((*model)->layers()[2]);
  // inv = gamma / sqrt(var + eps); shift = beta - mean * inv.
  const float inv = 1.0f / std::sqrt(4.0f + 1e-3f) * 2.0f;
  EXPECT_EQ(layer.inv(0), inv);
  EXPECT_EQ(layer.shift(1), 0.5f + -1.0f * inv);
}

TEST_F(ModelValidationTest, PaddingStepOutputRunsEveryPerStepLayer) {
  spec_.layers.insert(spec_.layers.begin() + 2, BatchNorm(2));
  spec_.layers.push_back(ActivationSpec{"act", "tanh"});
  auto model = Model::Create(spec_);
  ASSERT_TRUE(model.ok()) << model.status();
  // A zero step through bn is its shift; then the head, then tanh.
  const auto& bn = std::get<BatchNormalizationLayer>((*model)->layers()[2]);
  RowMatrix x = bn.shift;
  std::get<DenseLayer>((*model)->layers()[3]).Apply(x);
  std::get<ActivationLayer>((*model)->layers()[4]).Apply(x);
  ASSERT_EQ((*model)->padding_step_output().size(), 5);
  for (int j = 0; j < 5; ++j) {
    EXPECT_EQ((*model)->padding_step_output()(j), x(0, j)) << j;
  }
}

TEST_F(ModelValidationTest, PoolingNeedsASequence) {
  bi(1).layer.return_sequences = false;
  spec_.layers.insert(spec_.layers.begin() + 2,
                      GlobalPoolingSpec{"pool", PoolingType::kMax});
  EXPECT_THAT(Error(), HasSubstr("layers[2] 'pool': a GlobalPooling layer "
                                 "needs a sequence input"));
}

TEST_F(ModelValidationTest, NoBidirectionalAfterPooling) {
  spec_.layers.insert(spec_.layers.begin() + 1,
                      GlobalPoolingSpec{"pool", PoolingType::kMax});
  EXPECT_THAT(Error(), HasSubstr("layers[2] 'bi2': a Bidirectional layer "
                                 "needs a sequence input"));
}

TEST_F(ModelValidationTest, PoolingTypeMustBeSet) {
  spec_.layers.insert(spec_.layers.begin() + 2, GlobalPoolingSpec{"pool"});
  EXPECT_THAT(Error(), HasSubstr("layers[2] 'pool': pooling is not set"));
}

TEST_F(ModelValidationTest, MergeNoneAllowsNothingAfterIt) {
  bi(1).merge_mode = "none";
  spec_.layers[2] = ActivationSpec{"act", "relu"};
  EXPECT_THAT(Error(), HasSubstr("merge_mode 'none'"));
}

TEST_F(ModelValidationTest, ActivationLayerNeedsAKnownActivation) {
  spec_.layers.push_back(ActivationSpec{"act", ""});
  EXPECT_THAT(Error(), HasSubstr("layers[3] 'act': activation is not set"));
  std::get<ActivationSpec>(spec_.layers[3]).activation = "swoosh";
  EXPECT_THAT(Error(), HasSubstr("layers[3] 'act': activation: "));
}

TEST_F(ModelValidationTest, NormalizationWeightsHaveTheFeatureShape) {
  BatchNormalizationSpec bn = BatchNorm(2);
  bn.moving_mean = RandomWeights(rng_, {3});
  spec_.layers.insert(spec_.layers.begin() + 2, bn);
  EXPECT_THAT(Error(), HasSubstr("layers[2] 'bn': moving_mean: expected "
                                 "shape [2] ([features]), got [3]"));
  auto& b = std::get<BatchNormalizationSpec>(spec_.layers[2]);
  b.moving_mean = RandomWeights(rng_, {2});
  b.moving_variance.values[1] = -1.0f;
  EXPECT_THAT(Error(), HasSubstr("moving_variance: value 1 is -1"));
  b.moving_variance.values[1] = 1.0f;
  b.scale = false;
  EXPECT_THAT(Error(), HasSubstr("gamma is present (shape [2]) but must be "
                                 "absent: scale is false"));
  b.gamma = Tensor();
  b.epsilon = 0.0f;
  EXPECT_THAT(Error(), HasSubstr("epsilon must be positive"));
}

TEST_F(ModelValidationTest, LayerNormalizationNeedsGammaAndBetaByDefault) {
  spec_.layers.push_back(LayerNormalizationSpec{.name = "ln"});
  EXPECT_THAT(Error(), HasSubstr("layers[3] 'ln': gamma is missing; expected "
                                 "shape [5]"));
  auto& ln = std::get<LayerNormalizationSpec>(spec_.layers[3]);
  ln.scale = false;
  ln.center = false;
  EXPECT_TRUE(Model::Create(spec_).ok());
}

}  // namespace
}  // namespace biserve
