// Golden tests: every fixture in tests/golden/fixtures/ (written by
// generate.js from TensorFlow.js, see README.md there) evaluated as one
// ragged batch, with one and two threads, and sequence by sequence.
#include <string>
#include <vector>

#include "core/common/thread_pool.h"
#include "core/eval/evaluator.h"
#include "core/model/model.h"
#include "golden/golden_case.pb.h"
#include "gtest/gtest.h"
#include "proto/model_codec.h"
#include "tests/golden/golden_check.h"
#include "tests/support/test_util.h"

namespace biserve {
namespace {

const std::string kFixtureDir =
    std::string(BISERVE_SOURCE_DIR) + "/tests/golden/fixtures";

std::vector<std::string> FixtureNames() {
  return testing::ListCases(kFixtureDir, /*directories=*/false);
}

TEST(GoldenFixturesTest, FixturesArePresent) {
  // Guards the parameterised test below against silently running nothing.
  EXPECT_GE(FixtureNames().size(), 25u) << "in " << kFixtureDir;
}

class GoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenTest, MatchesTensorFlowJs) {
  const test::GoldenCase golden =
      testing::ReadGoldenCase(kFixtureDir + "/" + GetParam() + ".json");
  auto model = Model::Create(ModelSpecFromProto(golden.model()));
  ASSERT_TRUE(model.ok()) << model.status();
  testing::ExpectMatchesGoldenCase(**model, golden);
}

// The bundled example model (models/example/1/model.pbtxt) is the
// example_tagger fixture's model in text form: loading it through the file
// path reproduces TensorFlow.js' outputs, so its weights survived the text
// format exactly.
TEST(GoldenExampleModelTest, BundledExampleModelMatchesItsFixture) {
  const test::GoldenCase golden =
      testing::ReadGoldenCase(kFixtureDir + "/example_tagger.json");
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
        (*results)[0].output, TensorFromProto(golden.expected(i).output()),
        1e-5f));
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
