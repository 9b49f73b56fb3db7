// Ragged batches for property tests and the batch-invariance check the
// FP32 and BF16 tests share: a sequence gets the same bits in any batch,
// at any position, on any number of threads, as alone.
#pragma once

#include <memory>
#include <random>
#include <vector>

#include "core/common/tensor.h"
#include "core/common/thread_pool.h"
#include "core/eval/evaluator.h"
#include "core/model/model.h"
#include "gtest/gtest.h"

namespace biserve::testing {

// A random ragged batch for a model (RandomBatch), and the storage its
// inputs view.
struct Batch {
  std::vector<std::vector<float>> features;
  std::vector<std::vector<int32_t>> ids;
  std::vector<std::vector<std::vector<float>>> states;
  std::vector<SequenceInput> inputs;
};

// `size` sequences of 1 to `max_length` steps for `model`, with initial
// states on some and, where the model masks, about a quarter of the steps
// masked.
Batch RandomBatch(std::mt19937& rng, const Model& model, int size,
                  int max_length);

// Whether two tensors hold the same shape and the same bits (NaN included).
::testing::AssertionResult SameBits(const Tensor& actual,
                                    const Tensor& expected);

// Batch invariance: every tensor of `actual` has `expected`'s bits.
void ExpectResultIdentical(const SequenceResult& actual,
                           const SequenceResult& expected);

// Evaluates each of `inputs` alone on pools[0], then four random subsets
// in random orders on the pools in turn, and expects every sequence's
// result to have its solo bits.
void ExpectAnyBatchGivesSoloBits(
    const Model& model, const std::vector<SequenceInput>& inputs,
    const EvalOptions& options, std::mt19937& rng,
    const std::vector<std::unique_ptr<ThreadPool>>& pools);

}  // namespace biserve::testing
