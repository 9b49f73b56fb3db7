#include "core/eval/evaluator.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <iostream>
#include <limits>
#include <random>

#include "core/common/thread_pool.h"
#include "core/eval/field_error.h"
#include "core/eval/global_pooling.h"
#include "core/kernels/packed_layout.h"
#include "core/model/model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/batch_checks.h"
#include "tests/support/random_model.h"
#include "tests/support/reference_model.h"
#include "tests/support/test_util.h"

namespace biserve {
namespace {

using testing::Batch;
using testing::ExpectResultIdentical;
using ::testing::HasSubstr;
using testing::RandomBatch;
using testing::RandomModelSpec;
using testing::RandomValues;
using testing::ReferenceEvaluate;
using testing::SameBits;
using testing::TensorNear;

constexpr float kTolerance = 2e-5f;
// Normalization divides by a row's standard deviation, which scales the
// float rounding of the layers before it by up to 1 / sqrt(epsilon).
constexpr float kChainTolerance = 1e-4f;

void ExpectResultNear(const SequenceResult& actual,
                      const SequenceResult& expected, float tolerance) {
  EXPECT_TRUE(TensorNear(actual.output, expected.output, tolerance, true));
  EXPECT_TRUE(TensorNear(actual.forward, expected.forward, tolerance, true));
  EXPECT_TRUE(TensorNear(actual.backward, expected.backward, tolerance, true));
  ASSERT_EQ(actual.states.size(), expected.states.size());
  for (size_t l = 0; l < actual.states.size(); ++l) {
    ASSERT_EQ(actual.states[l].size(), expected.states[l].size());
    for (size_t s = 0; s < actual.states[l].size(); ++s) {
      EXPECT_TRUE(TensorNear(actual.states[l][s], expected.states[l][s],
                             tolerance, true))
          << "layer " << l << " state " << s;
    }
  }
}

class EvaluatorTest : public ::testing::TestWithParam<int> {};

// The property everything rests on: a ragged batch on the packed, threaded
// path gives every sequence what the plain reference gives it alone.
TEST_P(EvaluatorTest, RandomModelsMatchReferenceForEverySequenceOfABatch) {
  const int threads = GetParam();
  // min_parallel_flops 0: even these small batches take the parallel path.
  auto pool =
      ThreadPool::Create({.num_threads = threads, .min_parallel_flops = 0});
  ASSERT_TRUE(pool.ok());
  std::mt19937 rng(1234 + threads);
  for (int trial = 0; trial < 400; ++trial) {
    SCOPED_TRACE(::testing::Message() << "trial " << trial);
    auto model = Model::Create(RandomModelSpec(rng));
    ASSERT_TRUE(model.ok()) << model.status();
    const int size = std::uniform_int_distribution<int>(1, 7)(rng);
    Batch batch = RandomBatch(rng, **model, size, 30);
    EvalOptions options;
    options.directions = std::bernoulli_distribution(0.5)(rng);
    options.states = std::bernoulli_distribution(0.5)(rng);
    auto results = Evaluate(**model, batch.inputs, options, **pool);
    ASSERT_TRUE(results.ok()) << results.status();
    ASSERT_EQ(results->size(), batch.inputs.size());
    for (int i = 0; i < size; ++i) {
      SCOPED_TRACE(::testing::Message()
                   << "sequence " << i << " length " << batch.inputs[i].length);
      ExpectResultNear((*results)[i],
                       ReferenceEvaluate(**model, batch.inputs[i], options),
                       kTolerance);
    }
  }
}

TEST_P(EvaluatorTest, BatchedResultEqualsTheSequenceEvaluatedAlone) {
  auto pool =
      ThreadPool::Create({.num_threads = GetParam(), .min_parallel_flops = 0});
  ASSERT_TRUE(pool.ok());
  std::mt19937 rng(99);
  for (int trial = 0; trial < 40; ++trial) {
    auto model = Model::Create(RandomModelSpec(rng));
    ASSERT_TRUE(model.ok()) << model.status();
    Batch batch = RandomBatch(rng, **model, 6, 40);
    const EvalOptions options{
        .output = true, .directions = true, .states = true};
    auto together = Evaluate(**model, batch.inputs, options, **pool);
    ASSERT_TRUE(together.ok());
    for (size_t i = 0; i < batch.inputs.size(); ++i) {
      auto alone = Evaluate(**model, {batch.inputs[i]}, options, **pool);
      ASSERT_TRUE(alone.ok());
      // Every product sums in an order that does not depend on the batch.
      ExpectResultIdentical((*together)[i], (*alone)[0]);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Threads, EvaluatorTest,
                         ::testing::Values(1, 2, 3, 4, 7));

// A fixed small model for the error paths.
// Input 3 -> Bidirectional(LSTM 2, return_sequences, concat).
ModelSpec SmallLstmSpec(uint32_t seed) {
  std::mt19937 rng(seed);
  ModelSpec spec;
  spec.input_dim = 3;
  BidirectionalSpec bidi;
  bidi.layer.cell = CellType::kLstm;
  bidi.layer.units = 2;
  bidi.layer.return_sequences = true;
  bidi.layer.weights = {testing::RandomWeights(rng, {3, 8}),
                        testing::RandomWeights(rng, {2, 8}),
                        testing::RandomWeights(rng, {8})};
  bidi.backward_weights = bidi.layer.weights;
  spec.layers.push_back(bidi);
  return spec;
}

std::shared_ptr<const Model> SmallLstm() {
  return *Model::Create(SmallLstmSpec(7));
}

TEST(ValidateSequenceTest, RejectsWrongFeatureCountNamingTheShape) {
  auto model = SmallLstm();
  std::vector<float> values(5);
  SequenceInput in{.length = 2, .features = values};
  absl::Status status = ValidateSequence(*model, in);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("[length, input_dim] = [2, 3]"));
  EXPECT_THAT(status.message(), HasSubstr("got 5 values"));
}

TEST(ValidateSequenceTest, RejectsEmptySequence) {
  auto model = SmallLstm();
  absl::Status status = ValidateSequence(*model, SequenceInput{.length = 0});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("at least 1 time step"));
}

TEST(ValidateSequenceTest, RejectsNaNNamingTheStepAndFeature) {
  auto model = SmallLstm();
  std::vector<float> values(6, 0.5f);
  values[4] = NAN;
  absl::Status status =
      ValidateSequence(*model, SequenceInput{.length = 2, .features = values});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("features[1][1] is nan"));
}

TEST(ValidateSequenceTest, FindsTheFirstNonFiniteValueOfALongSequence) {
  auto model = SmallLstm();               // 3 features per step
  std::vector<float> values(3000, 0.5f);  // blocks of 1024 values are checked
  values[7] = std::numeric_limits<float>::max();  // large but finite
  values[8] = -std::numeric_limits<float>::max();
  EXPECT_TRUE(ValidateSequence(
                  *model, SequenceInput{.length = 1000, .features = values})
                  .ok());
  values[2900] = NAN;
  values[2500] = -INFINITY;  // the first one, in the third block
  absl::Status status = ValidateSequence(
      *model, SequenceInput{.length = 1000, .features = values});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("features[833][1] is -inf"));
  // Non-finite values pass when the caller allows them.
  EXPECT_TRUE(ValidateSequence(
                  *model, SequenceInput{.length = 1000, .features = values},
                  /*allow_non_finite=*/true)
                  .ok());
}

TEST(ValidateSequenceTest, RejectsWrongInitialStateCountListingTheStates) {
  auto model = SmallLstm();
  std::vector<float> values(3, 0.5f), h(2, 0.1f);
  SequenceInput in{.length = 1, .features = values, .initial_state = {h, h}};
  absl::Status status = ValidateSequence(*model, in);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              HasSubstr("expected 4 tensors (forward h [2], forward c [2], "
                        "backward h [2], backward c [2]"));
}

TEST(ValidateSequenceTest, RejectsWrongInitialStateSize) {
  auto model = SmallLstm();
  std::vector<float> values(3, 0.5f), h(2, 0.1f), bad(3, 0.1f);
  SequenceInput in{
      .length = 1, .features = values, .initial_state = {h, h, bad, h}};
  absl::Status status = ValidateSequence(*model, in);
  EXPECT_THAT(status.message(),
              HasSubstr("initial_state[2] (backward h): expected [2] values, "
                        "got 3"));
}

// The codec nests a sequence's errors under "sequences[i]" by the field
// the error carries, never by reading the message.
TEST(ValidateSequenceTest, NamesTheFieldAsData) {
  auto model = SmallLstm();
  std::vector<float> values(6, 0.5f), h(2, 0.1f), bad(3, 0.1f);
  values[4] = NAN;
  EXPECT_EQ(ErrorField(ValidateSequence(
                *model, SequenceInput{.length = 2, .features = values})),
            "features[1][1]");
  EXPECT_EQ(ErrorField(ValidateSequence(*model, SequenceInput{.length = 0})),
            "length");
  EXPECT_EQ(ErrorField(ValidateSequence(
                *model, SequenceInput{.length = 1, .features = values})),
            "features");
  values[4] = 0.5f;
  EXPECT_EQ(ErrorField(ValidateSequence(
                *model, SequenceInput{.length = 2,
                                      .features = values,
                                      .initial_state = {h, h, bad, h}})),
            "initial_state[2]");
  EXPECT_EQ(
      ErrorField(ValidateSequence(*model, SequenceInput{.length = 2,
                                                        .features = values,
                                                        .initial_state = {h}})),
      "initial_state");
  // Not about one field of the sequence: the wrong kind of input.
  std::vector<int32_t> ids = {1, 2};
  EXPECT_EQ(ErrorField(ValidateSequence(
                *model, SequenceInput{.length = 2, .token_ids = ids})),
            std::nullopt);
}

TEST(FieldErrorTest, UnderParentJoinsAFieldWithADotAndAnythingElseWithAColon) {
  const absl::Status field = FieldError("features[1][1]", " is nan");
  EXPECT_EQ(field.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(field.message(), "features[1][1] is nan");
  const absl::Status nested = UnderParent("sequences[2]", field);
  EXPECT_EQ(nested.message(), "sequences[2].features[1][1] is nan");
  EXPECT_EQ(ErrorField(nested), "sequences[2].features[1][1]");
  const absl::Status plain =
      UnderParent("sequences[2]", absl::InvalidArgumentError("wrong kind"));
  EXPECT_EQ(plain.message(), "sequences[2]: wrong kind");
  EXPECT_EQ(ErrorField(plain), std::nullopt);
  EXPECT_TRUE(UnderParent("sequences[2]", absl::OkStatus()).ok());
}

// Validate once: a sequence marked by ValidateAndMark for this model is not
// checked again. (The test breaks the mark's contract on purpose, changing
// the sequence after marking it, to see whether Evaluate looks.)
TEST(EvaluateTest, TrustsTheMarkOfASequenceValidatedForThisModel) {
  auto model = SmallLstm();
  auto pool = *ThreadPool::Create({});
  std::vector<float> good(3, 0.1f), nan(3, NAN);
  SequenceInput in{.length = 1, .features = good};
  ASSERT_TRUE(ValidateAndMark(*model, /*allow_non_finite=*/false, in).ok());
  in.features = nan;
  auto results = Evaluate(*model, {in}, {}, *pool);
  ASSERT_TRUE(results.ok()) << results.status();
  EXPECT_TRUE(std::isnan((*results)[0].output.values[0]));
}

TEST(EvaluateTest, ChecksASequenceMarkedForOtherRulesOrAnotherModel) {
  auto model = SmallLstm();
  auto other = SmallLstm();
  auto pool = *ThreadPool::Create({});
  std::vector<float> good(3, 0.1f), nan(3, NAN);
  SequenceInput unmarked{.length = 1, .features = nan};
  EXPECT_FALSE(Evaluate(*model, {unmarked}, {}, *pool).ok());
  // Marked under looser rules (NaN allowed) than Evaluate's.
  SequenceInput loose{.length = 1, .features = nan};
  ASSERT_TRUE(ValidateAndMark(*model, /*allow_non_finite=*/true, loose).ok());
  EXPECT_THAT(Evaluate(*model, {loose}, {}, *pool).status().message(),
              HasSubstr("sequences[0]: features[0][0] is nan"));
  EXPECT_TRUE(
      Evaluate(*model, {loose}, {.allow_non_finite = true}, *pool).ok());
  // Marked for another model.
  SequenceInput elsewhere{.length = 1, .features = good};
  ASSERT_TRUE(ValidateAndMark(*other, false, elsewhere).ok());
  elsewhere.features = nan;
  EXPECT_FALSE(Evaluate(*model, {elsewhere}, {}, *pool).ok());
  // A failed validation leaves no mark.
  SequenceInput failed{.length = 1, .features = nan};
  EXPECT_FALSE(ValidateAndMark(*model, false, failed).ok());
  EXPECT_FALSE(failed.validated.Covers(*model, true));
}

TEST(EvaluateTest, ReportsTheFailingSequenceAndComputesNothing) {
  auto model = SmallLstm();
  auto pool = *ThreadPool::Create({});
  std::vector<float> good(3, 0.1f), bad(2, 0.1f);
  std::vector<SequenceInput> batch = {{.length = 1, .features = good},
                                      {.length = 1, .features = bad}};
  auto results = Evaluate(*model, batch, {}, *pool);
  EXPECT_EQ(results.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(results.status().message(), HasSubstr("sequences[1]: "));
}

TEST(EvaluateTest, EmptyBatchGivesNoResults) {
  auto model = SmallLstm();
  auto pool = *ThreadPool::Create({});
  auto results = Evaluate(*model, {}, {}, *pool);
  ASSERT_TRUE(results.ok());
  EXPECT_TRUE(results->empty());
}

// Masking(mask_value=0) before a Bidirectional LSTM; steps 1 and 3 of
// [a, 0, b, 0] are masked. States skip them: they equal those of [a, b].
// Outputs at masked steps are zeros (Keras) or the direction's state h
// (TensorFlow.js): forward h after a, backward h after b, and for the
// trailing step the backward's initial state (zeros).
class MaskedStepsTest : public ::testing::TestWithParam<MaskedStepOutput> {};

TEST_P(MaskedStepsTest, StatesSkipMaskedStepsAndOutputsFollowTheMode) {
  ModelSpec spec = SmallLstmSpec(11);
  auto& bidi = std::get<BidirectionalSpec>(spec.layers[0]);
  bidi.merge_mode = "none";
  bidi.masked_step_output = GetParam();
  spec.layers.insert(spec.layers.begin(), MaskingSpec{"mask", 0.0f});
  auto model = *Model::Create(spec);
  auto pool = *ThreadPool::Create({.num_threads = 2});
  std::vector<float> a = {0.5f, -0.2f, 0.1f}, b = {-0.7f, 0.3f, 0.9f};
  std::vector<float> masked = a, compact = a;
  masked.insert(masked.end(), 3, 0.0f);
  masked.insert(masked.end(), b.begin(), b.end());
  masked.insert(masked.end(), 3, 0.0f);
  compact.insert(compact.end(), b.begin(), b.end());
  EvalOptions options{.output = true, .directions = true, .states = true};
  auto full = Evaluate(*model, {SequenceInput{.length = 4, .features = masked}},
                       options, *pool);
  auto small =
      Evaluate(*model, {SequenceInput{.length = 2, .features = compact}},
               options, *pool);
  ASSERT_TRUE(full.ok() && small.ok());
  const std::vector<float>& fw = (*full)[0].forward.values;    // [4, 2]
  const std::vector<float>& bw = (*full)[0].backward.values;   // [4, 2]
  const std::vector<float>& fw2 = (*small)[0].forward.values;  // [2, 2]
  const std::vector<float>& bw2 = (*small)[0].backward.values;
  const bool state = GetParam() == MaskedStepOutput::kState;
  for (int j = 0; j < 2; ++j) {
    EXPECT_FLOAT_EQ(fw[0 + j], fw2[0 + j]);
    EXPECT_FLOAT_EQ(fw[2 + j], state ? fw2[0 + j] : 0.0f);
    EXPECT_FLOAT_EQ(fw[4 + j], fw2[2 + j]);
    EXPECT_FLOAT_EQ(fw[6 + j], state ? fw2[2 + j] : 0.0f);
    EXPECT_FLOAT_EQ(bw[0 + j], bw2[0 + j]);
    EXPECT_FLOAT_EQ(bw[2 + j], state ? bw2[2 + j] : 0.0f);
    EXPECT_FLOAT_EQ(bw[4 + j], bw2[2 + j]);
    EXPECT_EQ(bw[6 + j], 0.0f);  // zeros either way: the initial state
  }
  for (int s = 0; s < 4; ++s) {
    EXPECT_EQ((*full)[0].states[0][s].values, (*small)[0].states[0][s].values);
  }
}

INSTANTIATE_TEST_SUITE_P(KerasAndTfjs, MaskedStepsTest,
                         ::testing::Values(MaskedStepOutput::kZeros,
                                           MaskedStepOutput::kState));

TEST(EvaluateTest, BackwardOutputIsAlignedToInputTime) {
  // With return_sequences, the backward direction's output at the last time
  // step has seen only that step: it equals the backward layer run on a
  // one-step sequence of that step alone.
  auto model = SmallLstm();
  auto pool = *ThreadPool::Create({});
  std::mt19937 rng(3);
  std::vector<float> values = RandomValues(rng, 4 * 3);
  EvalOptions options{.output = false, .directions = true};
  auto full = Evaluate(*model, {SequenceInput{.length = 4, .features = values}},
                       options, *pool);
  auto last_step = Evaluate(
      *model,
      {SequenceInput{.length = 1,
                     .features = absl::MakeSpan(values).subspan(9, 3)}},
      options, *pool);
  ASSERT_TRUE(full.ok() && last_step.ok());
  const Tensor& backward = (*full)[0].backward;
  ASSERT_EQ(backward.shape, (std::vector<int64_t>{4, 2}));
  EXPECT_NEAR(backward.values[6], (*last_step)[0].backward.values[0], 1e-6);
  EXPECT_NEAR(backward.values[7], (*last_step)[0].backward.values[1], 1e-6);
}

// The chain layers (Activation, BatchNormalization, LayerNormalization,
// GlobalPooling) on random models with masks.

// Whether `actual` and `expected` have NaN in the same places (an average
// over a sequence whose steps are all masked: 0 / 0, as in Keras), and
// otherwise TensorNear(tolerance, relative). `max_diff` grows to the largest
// relative difference seen.
::testing::AssertionResult ChainTensorNear(const Tensor& actual,
                                           const Tensor& expected,
                                           float tolerance, double& max_diff) {
  if (actual.shape != expected.shape) {
    return TensorNear(actual, expected, tolerance, true);
  }
  Tensor a = actual, e = expected;
  for (size_t i = 0; i < a.values.size(); ++i) {
    if (std::isnan(a.values[i]) != std::isnan(e.values[i])) {
      return ::testing::AssertionFailure()
             << "value " << i << ": " << a.values[i] << ", expected "
             << e.values[i];
    }
    if (std::isnan(a.values[i])) a.values[i] = e.values[i] = 0.0f;
    max_diff =
        std::max(max_diff, std::abs(double{a.values[i]} - e.values[i]) /
                               std::max(1.0, std::abs(double{e.values[i]})));
  }
  return TensorNear(a, e, tolerance, true);
}

class ChainEvaluatorTest : public ::testing::TestWithParam<int> {};

TEST_P(ChainEvaluatorTest, RandomChainModelsMatchReference) {
  auto pool =
      ThreadPool::Create({.num_threads = GetParam(), .min_parallel_flops = 0});
  ASSERT_TRUE(pool.ok());
  std::mt19937 rng(4321 + GetParam());
  double max_diff = 0.0;
  int pooled = 0;
  for (int trial = 0; trial < 400; ++trial) {
    SCOPED_TRACE(::testing::Message() << "trial " << trial);
    auto model = Model::Create(testing::RandomChainModelSpec(rng));
    ASSERT_TRUE(model.ok()) << model.status();
    pooled += !(*model)->returns_sequences();
    const int size = std::uniform_int_distribution<int>(1, 7)(rng);
    Batch batch = RandomBatch(rng, **model, size, 30);
    EvalOptions options;
    options.directions = std::bernoulli_distribution(0.5)(rng);
    options.states = std::bernoulli_distribution(0.5)(rng);
    auto results = Evaluate(**model, batch.inputs, options, **pool);
    ASSERT_TRUE(results.ok()) << results.status();
    for (int i = 0; i < size; ++i) {
      SCOPED_TRACE(::testing::Message()
                   << "sequence " << i << " length " << batch.inputs[i].length);
      const SequenceResult expected =
          ReferenceEvaluate(**model, batch.inputs[i], options);
      EXPECT_TRUE(ChainTensorNear((*results)[i].output, expected.output,
                                  kChainTolerance, max_diff));
      EXPECT_TRUE(ChainTensorNear((*results)[i].forward, expected.forward,
                                  kChainTolerance, max_diff));
    }
  }
  EXPECT_GT(pooled, 100);  // pooling is exercised, not just generated
  std::cout << "largest relative difference from the reference: " << max_diff
            << "\n";
}

TEST_P(ChainEvaluatorTest, ChainBatchEqualsEachSequenceAlone) {
  auto pool =
      ThreadPool::Create({.num_threads = GetParam(), .min_parallel_flops = 0});
  ASSERT_TRUE(pool.ok());
  std::mt19937 rng(77);
  for (int trial = 0; trial < 60; ++trial) {
    auto model = Model::Create(testing::RandomChainModelSpec(rng));
    ASSERT_TRUE(model.ok()) << model.status();
    Batch batch = RandomBatch(rng, **model, 6, 40);
    const EvalOptions options{.output = true, .directions = true};
    auto together = Evaluate(**model, batch.inputs, options, **pool);
    ASSERT_TRUE(together.ok());
    for (size_t i = 0; i < batch.inputs.size(); ++i) {
      auto alone = Evaluate(**model, {batch.inputs[i]}, options, **pool);
      ASSERT_TRUE(alone.ok());
      // Pooling and normalization read one sequence's rows only, and every
      // product is batch-invariant: bit for bit.
      EXPECT_TRUE(SameBits((*together)[i].output, (*alone)[0].output));
      EXPECT_TRUE(SameBits((*together)[i].forward, (*alone)[0].forward));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Threads, ChainEvaluatorTest, ::testing::Values(1, 3));

// The README's promise, on whichever kernel path this process runs (ctest
// runs this test again as .avx2 and .no_packed): a sequence's every output
// has the same bits whatever batch it is in, wherever it sits in it, and
// however many threads split the work. Random models of every layer,
// widths past the kernels' depth blocks (128) and row chunks (96 rows),
// random subsets of one pool of sequences in random orders.
TEST(BatchInvarianceTest, AnyBatchAnyPositionAnyThreadsSameBits) {
  std::vector<std::unique_ptr<ThreadPool>> pools;
  for (int threads : {1, 2, 3}) {
    pools.push_back(
        *ThreadPool::Create({.num_threads = threads, .min_parallel_flops = 0}));
  }
  std::mt19937 rng(20261204);
  for (int trial = 0; trial < 40; ++trial) {
    SCOPED_TRACE(::testing::Message() << "trial " << trial);
    testing::RandomModelOptions wide;
    wide.max_input_dim = 160;
    wide.max_units = 140;
    const ModelSpec spec = trial % 4 == 0 ? RandomModelSpec(rng, wide)
                           : trial % 4 == 1
                               ? RandomModelSpec(rng)
                               : testing::RandomChainModelSpec(rng);
    auto model = Model::Create(spec);
    ASSERT_TRUE(model.ok()) << model.status();
    const Batch all = RandomBatch(rng, **model, 12, 50);
    EvalOptions options{.output = true, .directions = true, .states = true};
    testing::ExpectAnyBatchGivesSoloBits(**model, all.inputs, options, rng,
                                         pools);
  }
}

// Input 3 -> Masking(0) -> Bidirectional(LSTM 2, sequences, concat) ->
// GlobalPooling: the average leaves masked steps out of sum and count; the
// max takes them in (Keras' Bidirectional gives zeros there).
TEST(ChainEvaluateTest, PoolingFollowsKerasMasks) {
  for (PoolingType type : {PoolingType::kAverage, PoolingType::kMax}) {
    ModelSpec spec = SmallLstmSpec(5);
    spec.layers.insert(spec.layers.begin(), MaskingSpec{"mask", 0.0f});
    spec.layers.push_back(GlobalPoolingSpec{"pool", type});
    ModelSpec plain = SmallLstmSpec(5);  // the same weights, no pooling
    plain.layers.insert(plain.layers.begin(), MaskingSpec{"mask", 0.0f});
    auto model = *Model::Create(spec);
    auto steps = *Model::Create(plain);
    auto pool = *ThreadPool::Create({.num_threads = 1});
    // Step 1 is masked; step 2 has one feature equal to the mask value only.
    std::vector<float> x = {0.5f, -0.2f, 0.1f, 0, 0, 0, 0.0f, 0.3f, -0.9f};
    SequenceInput input{.length = 3, .features = x};
    auto pooled = Evaluate(*model, {input}, EvalOptions(), *pool);
    auto rows = Evaluate(*steps, {input}, EvalOptions(), *pool);
    ASSERT_TRUE(pooled.ok() && rows.ok());
    const std::vector<float>& r = (*rows)[0].output.values;  // [3, 4]
    ASSERT_EQ((*pooled)[0].output.shape, std::vector<int64_t>{4});
    for (int j = 0; j < 4; ++j) {
      EXPECT_EQ(r[4 + j], 0.0f);  // Keras' zeros at the masked step
      const float expected =
          type == PoolingType::kAverage
              ? static_cast<float>((double{r[j]} + r[8 + j]) / 2)
              : std::max({r[j], 0.0f, r[8 + j]});
      EXPECT_EQ((*pooled)[0].output.values[j], expected) << j;
    }
  }
}

TEST(ChainEvaluateTest, AverageOfAnAllMaskedSequenceIsNaNAsInKeras) {
  ModelSpec spec = SmallLstmSpec(5);
  spec.layers.insert(spec.layers.begin(), MaskingSpec{"mask", 0.0f});
  spec.layers.push_back(GlobalPoolingSpec{"pool", PoolingType::kAverage});
  auto model = *Model::Create(spec);
  auto pool = *ThreadPool::Create({.num_threads = 1});
  std::vector<float> x(6, 0.0f);
  auto out = Evaluate(*model, {SequenceInput{.length = 2, .features = x}},
                      EvalOptions(), *pool);
  ASSERT_TRUE(out.ok());
  for (float v : (*out)[0].output.values) EXPECT_TRUE(std::isnan(v));
}

// The same rows pooled in a batch and alone: GlobalPool reads only the
// sequence's own rows, in time order, so the results are equal bit for bit.
TEST(ChainEvaluateTest, PoolingReadsOnlyItsOwnRowsBitForBit) {
  std::mt19937 rng(8);
  const std::vector<int64_t> lengths = {5, 3, 9, 1};
  const PackedLayout batch(lengths);
  RowMatrix x(batch.total_steps(), 6);
  for (int64_t r = 0; r < x.rows(); ++r) {
    x.row(r) = ConstVectorMap(RandomValues(rng, 6, 3.0f).data(), 6);
  }
  std::vector<uint8_t> keep(batch.total_steps());
  for (uint8_t& k : keep) k = std::bernoulli_distribution(0.7)(rng);
  for (PoolingType type : {PoolingType::kMax, PoolingType::kAverage}) {
    const GlobalPoolingLayer layer{"pool", type};
    const RowMatrix together = GlobalPool(layer, batch, x, keep.data());
    for (int i = 0; i < batch.batch_size(); ++i) {
      const PackedLayout one({batch.length(i)});
      RowMatrix rows(batch.length(i), 6);
      std::vector<uint8_t> own;
      for (int64_t t = 0; t < batch.length(i); ++t) {
        rows.row(t) = x.row(batch.row(i, t));
        own.push_back(keep[batch.row(i, t)]);
      }
      const RowMatrix alone = GlobalPool(layer, one, rows, own.data());
      for (int j = 0; j < 6; ++j) {
        const float a = together(i, j), b = alone(0, j);
        EXPECT_TRUE(a == b || (std::isnan(a) && std::isnan(b)))
            << i << " " << j;
      }
    }
  }
}

}  // namespace
}  // namespace biserve
