#include "tests/support/batch_checks.h"

#include <algorithm>
#include <bit>
#include <cstdint>

#include "tests/support/random_model.h"

namespace biserve::testing {

Batch RandomBatch(std::mt19937& rng, const Model& model, int size,
                  int max_length) {
  Batch b;
  b.features.resize(size);
  b.ids.resize(size);
  b.states.resize(size);
  const BidirectionalLayer& first =
      model.bidirectional(model.first_bidirectional());
  for (int i = 0; i < size; ++i) {
    const int64_t length =
        std::uniform_int_distribution<int64_t>(1, max_length)(rng);
    if (model.takes_token_ids()) {
      std::uniform_int_distribution<int32_t> id(
          0, model.embedding()->embeddings.rows() - 1);
      for (int64_t t = 0; t < length; ++t) b.ids[i].push_back(id(rng));
    } else {
      b.features[i] = RandomValues(rng, length * model.input_dim());
    }
    if (model.mask_value().has_value()) {
      // Mask about a quarter of the steps, anywhere in the sequence.
      for (int64_t t = 0; t < length; ++t) {
        if (std::bernoulli_distribution(0.25)(rng)) {
          std::fill_n(b.features[i].begin() + t * model.input_dim(),
                      model.input_dim(), *model.mask_value());
        }
      }
    }
    if (std::bernoulli_distribution(0.3)(rng)) {
      for (const RnnDirection* d : {&first.forward, &first.backward}) {
        for (int s = 0; s < d->state_count(); ++s) {
          b.states[i].push_back(RandomValues(rng, d->units, 0.5f));
        }
      }
    }
  }
  for (int i = 0; i < size; ++i) {
    SequenceInput in;
    in.length =
        model.takes_token_ids()
            ? static_cast<int64_t>(b.ids[i].size())
            : static_cast<int64_t>(b.features[i].size()) / model.input_dim();
    in.features = b.features[i];
    in.token_ids = b.ids[i];
    for (const auto& s : b.states[i]) in.initial_state.push_back(s);
    b.inputs.push_back(in);
  }
  return b;
}

::testing::AssertionResult SameBits(const Tensor& actual,
                                    const Tensor& expected) {
  if (actual.shape != expected.shape) {
    return ::testing::AssertionFailure() << "shapes differ";
  }
  for (size_t i = 0; i < actual.values.size(); ++i) {
    if (std::bit_cast<uint32_t>(actual.values[i]) !=
        std::bit_cast<uint32_t>(expected.values[i])) {
      return ::testing::AssertionFailure()
             << "value " << i << ": " << actual.values[i] << ", expected "
             << expected.values[i] << " (difference "
             << actual.values[i] - expected.values[i] << ")";
    }
  }
  return ::testing::AssertionSuccess();
}

void ExpectResultIdentical(const SequenceResult& actual,
                           const SequenceResult& expected) {
  EXPECT_TRUE(SameBits(actual.output, expected.output)) << "output";
  EXPECT_TRUE(SameBits(actual.forward, expected.forward)) << "forward";
  EXPECT_TRUE(SameBits(actual.backward, expected.backward)) << "backward";
  ASSERT_EQ(actual.states.size(), expected.states.size());
  for (size_t l = 0; l < actual.states.size(); ++l) {
    ASSERT_EQ(actual.states[l].size(), expected.states[l].size());
    for (size_t s = 0; s < actual.states[l].size(); ++s) {
      EXPECT_TRUE(SameBits(actual.states[l][s], expected.states[l][s]))
          << "layer " << l << " state " << s;
    }
  }
}

void ExpectAnyBatchGivesSoloBits(
    const Model& model, const std::vector<SequenceInput>& inputs,
    const EvalOptions& options, std::mt19937& rng,
    const std::vector<std::unique_ptr<ThreadPool>>& pools) {
  std::vector<SequenceResult> solo;
  for (const SequenceInput& in : inputs) {
    auto alone = Evaluate(model, {in}, options, *pools[0]);
    ASSERT_TRUE(alone.ok()) << alone.status();
    solo.push_back((*alone)[0]);
  }
  for (int round = 0; round < 4; ++round) {
    std::vector<int> order(inputs.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
    std::shuffle(order.begin(), order.end(), rng);
    order.resize(std::uniform_int_distribution<size_t>(2, order.size())(rng));
    std::vector<SequenceInput> batch;
    for (int i : order) batch.push_back(inputs[i]);
    ThreadPool& pool = *pools[round % pools.size()];
    auto together = Evaluate(model, batch, options, pool);
    ASSERT_TRUE(together.ok()) << together.status();
    for (size_t j = 0; j < order.size(); ++j) {
      SCOPED_TRACE(::testing::Message()
                   << "sequence " << order[j] << " at " << j << " of "
                   << order.size() << ", " << pool.num_threads() << " threads");
      ExpectResultIdentical((*together)[j], solo[order[j]]);
    }
  }
}

}  // namespace biserve::testing
