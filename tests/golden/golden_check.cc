#include "tests/golden/golden_check.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "core/common/thread_pool.h"
#include "core/eval/evaluator.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "proto/model_codec.h"
#include "tests/support/test_util.h"

namespace biserve::testing {
std::vector<std::string> ListCases(const std::string& folder,
                                   bool directories) {
  std::vector<std::string> names;
  if (!std::filesystem::is_directory(folder)) return names;
  for (const auto& entry : std::filesystem::directory_iterator(folder)) {
    if (directories && entry.is_directory()) {
      names.push_back(entry.path().filename().string());
    } else if (!directories && entry.path().extension() == ".json") {
      names.push_back(entry.path().stem().string());
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

test::GoldenCase ReadGoldenCase(const std::string& path) {
  std::ifstream file(path);
  std::stringstream buffer;
  buffer << file.rdbuf();
  test::GoldenCase golden;
  auto status =
      google::protobuf::util::JsonStringToMessage(buffer.str(), &golden);
  EXPECT_TRUE(status.ok()) << path << ": " << status.ToString();
  return golden;
}

std::vector<SequenceInput> GoldenBatch(const test::GoldenCase& golden) {
  std::vector<SequenceInput> batch;
  for (const test::GoldenSequence& seq : golden.sequences()) {
    SequenceInput in;
    in.length = seq.length();
    in.features =
        absl::MakeConstSpan(seq.features().data(), seq.features_size());
    in.token_ids =
        absl::MakeConstSpan(seq.token_ids().data(), seq.token_ids_size());
    for (const v1::Tensor& s : seq.initial_state()) {
      in.initial_state.push_back(
          absl::MakeConstSpan(s.values().data(), s.values_size()));
    }
    batch.push_back(in);
  }
  return batch;
}

void ExpectMatchesGoldenCase(const Model& model,
                             const test::GoldenCase& golden) {
  SCOPED_TRACE(golden.name() + ": " + golden.description());
  ASSERT_EQ(golden.sequences_size(), golden.expected_size());
  ASSERT_GT(golden.sequences_size(), 0);
  const float tolerance =
      golden.tolerance() > 0 ? static_cast<float>(golden.tolerance()) : 1e-5f;

  const std::vector<SequenceInput> batch = GoldenBatch(golden);
  EvalOptions options;
  options.directions = golden.expected(0).has_forward();
  options.states = golden.expected(0).states_size() > 0;

  for (int threads : {1, 2, 4}) {
    auto pool =
        ThreadPool::Create({.num_threads = threads, .min_parallel_flops = 0});
    ASSERT_TRUE(pool.ok());
    // The whole ragged batch at once, then every sequence alone.
    std::vector<std::vector<SequenceResult>> runs;
    auto together = Evaluate(model, batch, options, **pool);
    ASSERT_TRUE(together.ok()) << together.status();
    for (size_t i = 0; i < batch.size(); ++i) {
      auto alone = Evaluate(model, {batch[i]}, options, **pool);
      ASSERT_TRUE(alone.ok()) << alone.status();
      for (const SequenceResult* actual : {&(*together)[i], &(*alone)[0]}) {
        SCOPED_TRACE(::testing::Message()
                     << "threads " << threads << ", sequence " << i
                     << " (length " << batch[i].length << ")"
                     << (actual == &(*alone)[0] ? ", alone" : ", in batch"));
        const test::GoldenResult& expected = golden.expected(i);
        if (expected.has_output()) {
          EXPECT_TRUE(TensorNear(
              actual->output, TensorFromProto(expected.output()), tolerance));
        } else {
          EXPECT_TRUE(actual->output.empty());
        }
        if (expected.has_forward()) {
          EXPECT_TRUE(TensorNear(
              actual->forward, TensorFromProto(expected.forward()), tolerance));
          EXPECT_TRUE(TensorNear(actual->backward,
                                 TensorFromProto(expected.backward()),
                                 tolerance));
        }
        if (expected.states_size() > 0) {
          ASSERT_FALSE(actual->states.empty());
          const std::vector<Tensor>& states = actual->states.back();
          ASSERT_EQ(static_cast<int>(states.size()), expected.states_size());
          for (int s = 0; s < expected.states_size(); ++s) {
            EXPECT_TRUE(TensorNear(
                states[s], TensorFromProto(expected.states(s)), tolerance))
                << "state " << s;
          }
        }
      }
    }
  }
}

}  // namespace biserve::testing
