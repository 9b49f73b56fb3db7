// The TF.js Layers importer on the model folders in tests/golden/tfjs_models/
// (written by tests/golden/generate_tfjs_models.js): each converted model
// reproduces TensorFlow.js' outputs (expected.json), or fails with the error
// its expected_error.txt names.
#include "importers/tfjs_importer.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/common/thread_pool.h"
#include "core/eval/evaluator.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/model_codec.h"
#include "tests/golden/golden_check.h"

namespace biserve {
namespace {

using ::testing::HasSubstr;

const std::string kModelDir =
    std::string(BISERVE_SOURCE_DIR) + "/tests/golden/tfjs_models";

std::vector<std::string> CaseNames() {
  return testing::ListCases(kModelDir, /*directories=*/true);
}

std::string Slurp(const std::string& path) {
  std::ifstream file(path);
  std::stringstream buffer;
  buffer << file.rdbuf();
  std::string text = buffer.str();
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) {
    text.pop_back();
  }
  return text;
}

TEST(TfjsModelsTest, CasesArePresent) {
  EXPECT_GE(CaseNames().size(), 15u) << "in " << kModelDir;
}

class TfjsImporterTest : public ::testing::TestWithParam<std::string> {};

TEST_P(TfjsImporterTest, ConvertsAndReproducesTensorFlowJs) {
  const std::string folder = kModelDir + "/" + GetParam();
  absl::StatusOr<v1::Model> model =
      ImportTfjsLayersModel(folder + "/model.json", {});
  if (std::filesystem::exists(folder + "/expected_error.txt")) {
    const std::string expected = Slurp(folder + "/expected_error.txt");
    ASSERT_FALSE(model.ok()) << "converted, but should fail with: " << expected;
    EXPECT_THAT(model.status().message(), HasSubstr(expected));
    return;
  }
  ASSERT_TRUE(model.ok()) << model.status();
  test::GoldenCase golden = testing::ReadGoldenCase(folder + "/expected.json");
  auto loaded = Model::Create(ModelSpecFromProto(*model));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  testing::ExpectMatchesGoldenCase(**loaded, golden);
}

INSTANTIATE_TEST_SUITE_P(Models, TfjsImporterTest,
                         ::testing::ValuesIn(CaseNames()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(TfjsImporterTest);

// Keras 3 defines hard_sigmoid differently from Keras 2 and TF.js: a model
// saved by Keras 3 gets biserve's hard_sigmoid_keras3.
TEST(TfjsImporterKerasVersionTest, HardSigmoidFollowsTheKerasVersion) {
  const std::string source =
      kModelDir + "/keras_lstm_backward_layer_relu_concat_seq";
  std::string json = Slurp(source + "/model.json");
  auto replace_all = [&](const std::string& from, const std::string& to) {
    for (size_t at = json.find(from); at != std::string::npos;
         at = json.find(from, at + to.size())) {
      json.replace(at, from.size(), to);
    }
  };
  replace_all("\"recurrent_activation\": \"sigmoid\"",
              "\"recurrent_activation\": \"hard_sigmoid\"");
  for (const auto& [version, expected] :
       {std::pair<std::string, std::string>{"2.15.0", "hard_sigmoid"},
        {"3.3.3", "hard_sigmoid_keras3"}}) {
    const std::string folder =
        ::testing::TempDir() + "/keras_version_" + version;
    std::filesystem::create_directories(folder);
    std::filesystem::copy_file(
        source + "/group1-shard1of1.bin", folder + "/group1-shard1of1.bin",
        std::filesystem::copy_options::overwrite_existing);
    std::string versioned = json;
    versioned.replace(versioned.find("\"2.15.0\""), 8, "\"" + version + "\"");
    std::ofstream(folder + "/model.json") << versioned;
    auto model = ImportTfjsLayersModel(folder + "/model.json", {});
    ASSERT_TRUE(model.ok()) << model.status();
    const v1::BidirectionalLayer& bidi = model->layers(0).bidirectional();
    EXPECT_EQ(bidi.layer().recurrent_activation(), expected) << version;
    EXPECT_EQ(bidi.backward_layer().recurrent_activation(), expected);
  }
}

// Input(shape=(6, 4)): the model declares 6 time steps. biserve carries
// that as declared_time_steps and, as Keras does for RNNs, serves any length.
TEST(TfjsImporterTimeStepsTest, DeclaredTimeStepsIsKeptAndOtherLengthsServe) {
  absl::StatusOr<v1::Model> model = ImportTfjsLayersModel(
      kModelDir +
          "/keras_lstm_unroll_constraint_dropout_sum_last_dense"
          "/model.json",
      {});
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->declared_time_steps(), 6);
  EXPECT_EQ(model->input_dim(), 4);
  auto loaded = Model::Create(ModelSpecFromProto(*model));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->declared_time_steps(), 6);

  auto pool = ThreadPool::Create({.num_threads = 1, .min_parallel_flops = 0});
  ASSERT_TRUE(pool.ok()) << pool.status();
  std::vector<float> features(11 * 4);
  for (size_t i = 0; i < features.size(); ++i) {
    features[i] = 0.1f * static_cast<float>(i % 7) - 0.3f;
  }
  for (int64_t length : {1, 3, 11}) {
    SequenceInput in;
    in.length = length;
    in.features = absl::MakeConstSpan(features.data(), length * 4);
    auto results = Evaluate(**loaded, {in}, EvalOptions{}, **pool);
    ASSERT_TRUE(results.ok()) << length << ": " << results.status();
    const Tensor& output = (*results)[0].output;
    EXPECT_EQ(output.shape, std::vector<int64_t>({2})) << length;
    for (float v : output.values) EXPECT_TRUE(std::isfinite(v)) << length;
  }
  // Not the same for every length: the steps beyond a prefix count.
  SequenceInput three;
  three.length = 3;
  three.features = absl::MakeConstSpan(features.data(), 12);
  SequenceInput eleven;
  eleven.length = 11;
  eleven.features = absl::MakeConstSpan(features.data(), 44);
  auto both = Evaluate(**loaded, {three, eleven}, EvalOptions{}, **pool);
  ASSERT_TRUE(both.ok()) << both.status();
  EXPECT_NE((*both)[0].output.values, (*both)[1].output.values);
}

TEST(TfjsImporterErrorsTest, MissingModelJsonIsNotFound) {
  auto model = ImportTfjsLayersModel(kModelDir + "/no/such/model.json", {});
  EXPECT_EQ(model.status().code(), absl::StatusCode::kNotFound);
}

TEST(TfjsImporterErrorsTest, GraphModelIsExplained) {
  const std::string path = ::testing::TempDir() + "/graph_model.json";
  std::ofstream(path) << R"({"format": "graph-model", "modelTopology": null,
                            "weightsManifest": []})";
  auto model = ImportTfjsLayersModel(path, {});
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(model.status().message(), HasSubstr("no modelTopology"));
}

// Found writing fuzz_tfjs_import (tests/fuzz/): a manifest could name any
// file of the machine (an absolute path, or ../) and have it read into the
// weights, or /dev/zero, read without end.
TEST(TfjsImporterErrorsTest, ShardPathsOutsideTheModelFolderAreRefused) {
  const std::string source =
      kModelDir + "/keras_lstm_backward_layer_relu_concat_seq";
  const std::string json = Slurp(source + "/model.json");
  const std::string root = ::testing::TempDir() + "/shard_paths";
  std::filesystem::create_directories(root + "/model/shards");
  for (const std::string& to :
       {root + "/group1-shard1of1.bin", root + "/model/shards/s.bin"}) {
    std::filesystem::copy_file(
        source + "/group1-shard1of1.bin", to,
        std::filesystem::copy_options::overwrite_existing);
  }
  auto import_with = [&](const std::string& shard_path) {
    std::string changed = json;
    const std::string from = "\"group1-shard1of1.bin\"";
    changed.replace(changed.find(from), from.size(), "\"" + shard_path + "\"");
    std::ofstream(root + "/model/model.json") << changed;
    return ImportTfjsLayersModel(root + "/model/model.json", {});
  };
  // A subfolder of the model's folder is fine.
  auto inside = import_with("shards/s.bin");
  EXPECT_TRUE(inside.ok()) << inside.status();
  for (const std::string& outside :
       {std::string("../group1-shard1of1.bin"),
        std::string("shards/../../group1-shard1of1.bin"),
        root + "/group1-shard1of1.bin"}) {
    auto model = import_with(outside);
    EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument)
        << outside;
    EXPECT_THAT(model.status().message(),
                HasSubstr("paths must name files in the model's folder"))
        << outside;
  }
}

}  // namespace
}  // namespace biserve
