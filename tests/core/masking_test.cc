// Keras' Masking layer masks a time step only when EVERY feature equals
// mask_value. A step that equals it in some features only (the first, the
// last, all but one) is an ordinary step: the model must compute exactly
// what the same model without Masking computes. Found by breaking the code
// on purpose: a Masking that looked at the first feature alone passed every
// other test, whose masked steps are all-mask_value vectors (issue 18).
#include <algorithm>
#include <random>
#include <variant>
#include <vector>

#include "core/common/thread_pool.h"
#include "core/eval/evaluator.h"
#include "core/model/model.h"
#include "gtest/gtest.h"
#include "tests/support/random_model.h"
#include "tests/support/test_util.h"

namespace biserve {
namespace {

using testing::RandomModelSpec;
using testing::RandomValues;
using testing::TensorNear;

// Steps of `input_dim` features, each equal to `mask_value` in some
// features only; `step_kinds` says which, one entry per step:
// 0: the first feature only, 1: the last only, 2: all but feature k
// (k = step index mod input_dim), 3: none (an ordinary random step).
std::vector<float> PartlyMaskedSteps(std::mt19937& rng, int64_t input_dim,
                                     float mask_value,
                                     const std::vector<int>& step_kinds) {
  std::vector<float> x =
      RandomValues(rng, static_cast<int64_t>(step_kinds.size()) * input_dim);
  for (size_t t = 0; t < step_kinds.size(); ++t) {
    float* step = x.data() + t * input_dim;
    switch (step_kinds[t]) {
      case 0:
        step[0] = mask_value;
        break;
      case 1:
        step[input_dim - 1] = mask_value;
        break;
      case 2:
        for (int64_t j = 0; j < input_dim; ++j) {
          if (j != static_cast<int64_t>(t) % input_dim) step[j] = mask_value;
        }
        break;
      default:
        break;
    }
    // RandomValues never gives mask_value itself where it was not put
    // (kRandomMaskValue is outside its range; 0 has probability ~0), but
    // make sure no step is all mask_value.
    bool all = true;
    for (int64_t j = 0; j < input_dim; ++j) all &= step[j] == mask_value;
    EXPECT_FALSE(all) << "step " << t;
  }
  return x;
}

// `spec` with its front Masking layer (if any) replaced by Masking(value),
// or removed when `value` is empty.
ModelSpec WithMasking(ModelSpec spec, std::optional<float> value) {
  if (!spec.layers.empty() &&
      std::holds_alternative<MaskingSpec>(spec.layers.front())) {
    spec.layers.erase(spec.layers.begin());
  }
  if (value.has_value()) {
    spec.layers.insert(spec.layers.begin(), MaskingSpec{"masking", *value});
  }
  return spec;
}

void ExpectSameResults(const SequenceResult& actual,
                       const SequenceResult& expected) {
  // Same weights, same evaluator: only masking could make them differ, and
  // a masked step changes the outputs by far more than rounding.
  constexpr float kTolerance = 1e-6f;
  EXPECT_TRUE(TensorNear(actual.output, expected.output, kTolerance))
      << "output";
  EXPECT_TRUE(TensorNear(actual.forward, expected.forward, kTolerance))
      << "forward";
  EXPECT_TRUE(TensorNear(actual.backward, expected.backward, kTolerance))
      << "backward";
  ASSERT_EQ(actual.states.size(), expected.states.size());
  for (size_t layer = 0; layer < actual.states.size(); ++layer) {
    ASSERT_EQ(actual.states[layer].size(), expected.states[layer].size());
    for (size_t s = 0; s < actual.states[layer].size(); ++s) {
      EXPECT_TRUE(TensorNear(actual.states[layer][s], expected.states[layer][s],
                             kTolerance))
          << "layer " << layer << " state " << s;
    }
  }
}

class PartlyMaskedStepsTest : public ::testing::TestWithParam<float> {};

// Random models (cells, merge modes, heads, masked-step output modes) with
// Masking(mask_value) in front, on batches whose steps equal mask_value in
// the first feature only, the last feature only, or all features but one:
// nothing is masked, so the outputs and states are those of the same model
// without Masking. Evaluated as one ragged batch and one sequence at a time.
TEST_P(PartlyMaskedStepsTest, AreNotMasked) {
  const float mask_value = GetParam();
  auto pool = *ThreadPool::Create({.num_threads = 2});
  int checked = 0;
  for (int seed = 0; seed < 40; ++seed) {
    std::mt19937 rng(1800 + seed);
    testing::RandomModelOptions options;
    options.allow_embedding = false;
    const ModelSpec spec = RandomModelSpec(rng, options);
    if (spec.input_dim < 2) continue;  // "some features only" needs two
    SCOPED_TRACE(::testing::Message()
                 << "seed " << seed << ", input_dim " << spec.input_dim);
    auto masked_model = Model::Create(WithMasking(spec, mask_value));
    auto plain_model = Model::Create(WithMasking(spec, std::nullopt));
    ASSERT_TRUE(masked_model.ok()) << masked_model.status();
    ASSERT_TRUE(plain_model.ok()) << plain_model.status();
    ASSERT_TRUE((*masked_model)->mask_value().has_value());

    std::vector<std::vector<float>> features = {
        PartlyMaskedSteps(rng, spec.input_dim, mask_value, {0, 0, 0}),
        PartlyMaskedSteps(rng, spec.input_dim, mask_value, {1, 3, 1, 1}),
        PartlyMaskedSteps(rng, spec.input_dim, mask_value, {2, 2, 2, 2, 2}),
        PartlyMaskedSteps(rng, spec.input_dim, mask_value, {3, 0, 1, 2, 3}),
        PartlyMaskedSteps(rng, spec.input_dim, mask_value, {2}),
    };
    std::vector<SequenceInput> batch;
    for (const std::vector<float>& x : features) {
      batch.push_back(SequenceInput{
          .length = static_cast<int64_t>(x.size()) / spec.input_dim,
          .features = x});
    }
    EvalOptions eval{.output = true, .directions = true, .states = true};
    auto masked = Evaluate(**masked_model, batch, eval, *pool);
    auto plain = Evaluate(**plain_model, batch, eval, *pool);
    ASSERT_TRUE(masked.ok()) << masked.status();
    ASSERT_TRUE(plain.ok()) << plain.status();
    for (size_t i = 0; i < batch.size(); ++i) {
      SCOPED_TRACE(::testing::Message() << "sequence " << i);
      ExpectSameResults((*masked)[i], (*plain)[i]);
      auto alone = Evaluate(**masked_model, {batch[i]}, eval, *pool);
      ASSERT_TRUE(alone.ok()) << alone.status();
      ExpectSameResults((*alone)[0], (*plain)[i]);
    }
    ++checked;
  }
  EXPECT_GE(checked, 20);
}

// The control: a step equal to mask_value in EVERY feature is masked. The
// first Bidirectional layer's final states skip it: they are those of the
// sequence without that step.
TEST_P(PartlyMaskedStepsTest, AStepEqualInEveryFeatureIsMasked) {
  const float mask_value = GetParam();
  auto pool = *ThreadPool::Create({});
  for (int seed = 0; seed < 10; ++seed) {
    std::mt19937 rng(1900 + seed);
    testing::RandomModelOptions options;
    options.allow_embedding = false;
    const ModelSpec spec = RandomModelSpec(rng, options);
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    auto model = Model::Create(WithMasking(spec, mask_value));
    ASSERT_TRUE(model.ok()) << model.status();
    const int64_t n = spec.input_dim;
    std::vector<float> compact = RandomValues(rng, 3 * n);
    std::vector<float> with_masked(compact.begin(), compact.begin() + 2 * n);
    with_masked.insert(with_masked.end(), n, mask_value);
    with_masked.insert(with_masked.end(), compact.begin() + 2 * n,
                       compact.end());
    EvalOptions eval{.output = false, .states = true};
    auto full =
        Evaluate(**model, {SequenceInput{.length = 4, .features = with_masked}},
                 eval, *pool);
    auto small =
        Evaluate(**model, {SequenceInput{.length = 3, .features = compact}},
                 eval, *pool);
    ASSERT_TRUE(full.ok() && small.ok());
    ASSERT_FALSE((*full)[0].states.empty());
    const std::vector<Tensor>& got = (*full)[0].states[0];
    const std::vector<Tensor>& want = (*small)[0].states[0];
    ASSERT_EQ(got.size(), want.size());
    for (size_t s = 0; s < got.size(); ++s) {
      EXPECT_TRUE(TensorNear(got[s], want[s], 1e-6f)) << "state " << s;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(MaskValues, PartlyMaskedStepsTest,
                         ::testing::Values(0.0f, testing::kRandomMaskValue,
                                           -1.5f));

}  // namespace
}  // namespace biserve
