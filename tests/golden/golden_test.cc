// Golden tests: every fixture in tests/golden/fixtures/ (written by
// generate.js from TensorFlow.js, see README.md there) evaluated as one
// ragged batch, with one and two threads, and sequence by sequence.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/evaluator.h"
#include "core/model.h"
#include "core/thread_pool.h"
#include "golden/golden_case.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "proto/model_codec.h"
#include "tests/core/test_util.h"

namespace biserve {
namespace {

const std::string kFixtureDir =
    std::string(BISERVE_SOURCE_DIR) + "/tests/golden/fixtures";

std::vector<std::string> FixtureNames() {
  std::vector<std::string> names;
  if (!std::filesystem::is_directory(kFixtureDir)) return names;
  for (const auto& entry : std::filesystem::directory_iterator(kFixtureDir)) {
    if (entry.path().extension() == ".json") {
      names.push_back(entry.path().stem().string());
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

Tensor FromProto(const v1::Tensor& t) {
  return Tensor{{t.shape().begin(), t.shape().end()},
                {t.values().begin(), t.values().end()}};
}

test::GoldenCase ReadCase(const std::string& name) {
  std::ifstream file(kFixtureDir + "/" + name + ".json");
  std::stringstream buffer;
  buffer << file.rdbuf();
  test::GoldenCase golden;
  auto status =
      google::protobuf::util::JsonStringToMessage(buffer.str(), &golden);
  EXPECT_TRUE(status.ok()) << name << ": " << status.ToString();
  return golden;
}

TEST(GoldenFixturesTest, FixturesArePresent) {
  // Guards the parameterised test below against silently running nothing.
  EXPECT_GE(FixtureNames().size(), 25u) << "in " << kFixtureDir;
}

class GoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenTest, MatchesTensorFlowJs) {
  const test::GoldenCase golden = ReadCase(GetParam());
  SCOPED_TRACE(golden.description());
  auto model = Model::Create(ModelSpecFromProto(golden.model()));
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_EQ(golden.sequences_size(), golden.expected_size());
  ASSERT_GT(golden.sequences_size(), 0);
  const float tolerance =
      golden.tolerance() > 0 ? static_cast<float>(golden.tolerance()) : 1e-5f;

  std::vector<std::vector<float>> states_storage;
  states_storage.reserve(64);
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
  EvalOptions options;
  options.directions = golden.expected(0).has_forward();
  options.states = golden.expected(0).states_size() > 0;

  for (int threads : {1, 2}) {
    auto pool = ThreadPool::Create({.num_threads = threads});
    ASSERT_TRUE(pool.ok());
    // The whole ragged batch at once, then every sequence alone.
    std::vector<std::vector<SequenceResult>> runs;
    auto together = Evaluate(**model, batch, options, **pool);
    ASSERT_TRUE(together.ok()) << together.status();
    for (size_t i = 0; i < batch.size(); ++i) {
      auto alone = Evaluate(**model, {batch[i]}, options, **pool);
      ASSERT_TRUE(alone.ok()) << alone.status();
      for (const SequenceResult* actual : {&(*together)[i], &(*alone)[0]}) {
        SCOPED_TRACE(::testing::Message()
                     << "threads " << threads << ", sequence " << i
                     << " (length " << batch[i].length << ")"
                     << (actual == &(*alone)[0] ? ", alone" : ", in batch"));
        const test::GoldenResult& expected = golden.expected(i);
        if (expected.has_output()) {
          EXPECT_TRUE(testing::TensorNear(
              actual->output, FromProto(expected.output()), tolerance));
        } else {
          EXPECT_TRUE(actual->output.empty());
        }
        if (expected.has_forward()) {
          EXPECT_TRUE(testing::TensorNear(
              actual->forward, FromProto(expected.forward()), tolerance));
          EXPECT_TRUE(testing::TensorNear(
              actual->backward, FromProto(expected.backward()), tolerance));
        }
        if (expected.states_size() > 0) {
          ASSERT_FALSE(actual->states.empty());
          const std::vector<Tensor>& states = actual->states.back();
          ASSERT_EQ(static_cast<int>(states.size()), expected.states_size());
          for (int s = 0; s < expected.states_size(); ++s) {
            EXPECT_TRUE(testing::TensorNear(
                states[s], FromProto(expected.states(s)), tolerance))
                << "state " << s;
          }
        }
      }
    }
  }
}

// The bundled example model (models/example/1/model.pbtxt) is the
// example_tagger fixture's model in text form: loading it through the file
// path reproduces TensorFlow.js' outputs, so its weights survived the text
// format exactly.
TEST(GoldenExampleModelTest, BundledExampleModelMatchesItsFixture) {
  const test::GoldenCase golden = ReadCase("example_tagger");
  auto model = LoadModelFile(std::string(BISERVE_SOURCE_DIR) +
                             "/models/example/1/model.pbtxt");
  ASSERT_TRUE(model.ok()) << model.status();
  auto pool = *ThreadPool::Create({.num_threads = 2});
  for (int i = 0; i < golden.sequences_size(); ++i) {
    const test::GoldenSequence& seq = golden.sequences(i);
    SequenceInput in{.length = seq.length(),
                     .features = absl::MakeConstSpan(seq.features().data(),
                                                     seq.features_size())};
    auto results = Evaluate(**model, {in}, {}, *pool);
    ASSERT_TRUE(results.ok()) << results.status();
    EXPECT_TRUE(testing::TensorNear(
        (*results)[0].output, FromProto(golden.expected(i).output()), 1e-5f));
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GoldenTest,
                         ::testing::ValuesIn(FixtureNames()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(GoldenTest);

}  // namespace
}  // namespace biserve
