#include "importers/tfjs_weights_manifest.h"

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/importers/json_for_test.h"

namespace biserve::importers {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::ParseJson;

// A folder of its own per test, holding shard files of float32 values.
class TfjsWeightsManifestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    folder_ =
        std::filesystem::path(::testing::TempDir()) /
        absl::StrCat(
            "tfjs_weights_",
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(folder_);
  }

  void WriteShard(const std::string& name, const std::vector<float>& values) {
    std::ofstream out(folder_ / name, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(values.data()),
              static_cast<std::streamsize>(values.size() * sizeof(float)));
  }

  absl::StatusOr<WeightMap> Read(const std::string& manifest) {
    return ReadTfjsWeights(
        ParseJson(absl::StrCat(R"({"weightsManifest": )", manifest, "}")),
        folder_);
  }

  std::filesystem::path folder_;
};

TEST_F(TfjsWeightsManifestTest, CutsShardsIntoWeightsInOrder) {
  WriteShard("a.bin", {1, 2, 3});
  WriteShard("b.bin", {4, 5});
  absl::StatusOr<WeightMap> weights = Read(R"([{
      "paths": ["a.bin", "b.bin"],
      "weights": [{"name": "d/kernel:0", "shape": [2, 2], "dtype": "float32"},
                  {"name": "d/bias", "shape": [1]}]}])");
  ASSERT_TRUE(weights.ok()) << weights.status();
  ASSERT_EQ(weights->size(), 2u);
  const Weight& kernel = weights->at("d/kernel");  // ":0" dropped
  EXPECT_THAT(kernel.shape, ElementsAre(2, 2));
  EXPECT_THAT(kernel.values, ElementsAre(1, 2, 3, 4));
  EXPECT_THAT(weights->at("d/bias").values, ElementsAre(5));
  EXPECT_FALSE(kernel.used);
}

TEST_F(TfjsWeightsManifestTest, ShortOrLongShardsAreDataLoss) {
  WriteShard("a.bin", {1, 2, 3});
  absl::StatusOr<WeightMap> too_few = Read(
      R"([{"paths": ["a.bin"], "weights": [{"name": "w", "shape": [4]}]}])");
  EXPECT_EQ(too_few.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(too_few.status().message(),
              HasSubstr("a.bin: the shards hold 12 bytes, but the manifest "
                        "needs more by the end of weight 'w'"));
  absl::StatusOr<WeightMap> too_many = Read(
      R"([{"paths": ["a.bin"], "weights": [{"name": "w", "shape": [2]}]}])");
  EXPECT_EQ(too_many.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(too_many.status().message(),
              HasSubstr("the manifest describes 8 (a mismatched shard)"));
}

// Found by fuzz_tfjs_import: the product of the dimensions wrapped around.
TEST_F(TfjsWeightsManifestTest, HugeShapeIsDataLossNotOverflow) {
  WriteShard("a.bin", {1});
  absl::StatusOr<WeightMap> weights = Read(R"([{"paths": ["a.bin"],
      "weights": [{"name": "w", "shape": [4294967296, 4294967296, 2]}]}])");
  EXPECT_EQ(weights.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(weights.status().message(), HasSubstr("needs more"));
}

TEST_F(TfjsWeightsManifestTest, ZeroSizedWeightReadsEmpty) {
  WriteShard("a.bin", {});
  absl::StatusOr<WeightMap> weights = Read(
      R"([{"paths": ["a.bin"], "weights": [{"name": "w", "shape": [0, 3]}]}])");
  ASSERT_TRUE(weights.ok()) << weights.status();
  EXPECT_TRUE(weights->at("w").values.empty());
}

TEST_F(TfjsWeightsManifestTest, RefusesWhatBiserveDoesNotLoad) {
  WriteShard("a.bin", {1, 2});
  const struct {
    const char* manifest;
    const char* error;
  } cases[] = {
      {R"([{"paths": ["a.bin"], "weights": [{"name": "w", "shape": [2],
           "quantization": {"dtype": "uint8"}}]}])",
       "w: quantized weights are not supported"},
      {R"([{"paths": ["a.bin"], "weights": [{"name": "w", "shape": [2],
           "dtype": "int32"}]}])",
       "w: dtype int32 is not supported"},
      {R"([{"paths": ["a.bin"], "weights": [{"name": "w", "shape": [1.5]}]}])",
       "w: shape must be a list of sizes"},
      {R"([{"paths": ["a.bin"], "weights": [{"name": "w", "shape": [1]},
           {"name": "w:0", "shape": [1]}]}])",
       "w:0: the manifest lists this weight twice"},
      {R"([{"paths": ["a.bin"], "weights": [{"shape": [2]}]}])",
       "weightsManifest[0].weights[0]: expected \"name\" and \"shape\""},
      {R"([{"paths": ["../a.bin"], "weights": []}])",
       "weightsManifest[0]: paths must name files in the model's folder"},
      {R"([{"paths": [3], "weights": []}])",
       "weightsManifest[0]: paths must be strings"},
      {R"([{"weights": []}])",
       "weightsManifest[0]: expected \"paths\" and \"weights\" lists"},
      {R"({})", "model.json: no weightsManifest list"},
  };
  for (const auto& c : cases) {
    absl::StatusOr<WeightMap> weights = Read(c.manifest);
    EXPECT_EQ(weights.status().code(), absl::StatusCode::kInvalidArgument)
        << c.manifest;
    EXPECT_THAT(weights.status().message(), HasSubstr(c.error)) << c.manifest;
  }
}

TEST_F(TfjsWeightsManifestTest, MissingShardIsNotFound) {
  absl::StatusOr<WeightMap> weights =
      Read(R"([{"paths": ["absent.bin"], "weights": []}])");
  EXPECT_EQ(weights.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace biserve::importers
