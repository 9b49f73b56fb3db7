#include "importers/keras_layer.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/importers/json_for_test.h"

namespace biserve::importers {
namespace {

using ::testing::HasSubstr;
using testing::ParseJson;
using testing::ParseJsonValue;

TEST(KerasFlavourTest, FromKerasVersion) {
  EXPECT_EQ(KerasFlavourFromVersion("tfjs-layers 4.22.0"), KerasFlavour::kTfjs);
  EXPECT_EQ(KerasFlavourFromVersion("3.3.3"), KerasFlavour::kKeras3);
  EXPECT_EQ(KerasFlavourFromVersion("2.15.0"), KerasFlavour::kKeras2);
  EXPECT_EQ(KerasFlavourFromVersion(""), KerasFlavour::kKeras2);
}

TEST(ParseKerasLayerTest, NameFromTheEntryElseItsConfig) {
  const google::protobuf::Value entry = ParseJsonValue(
      R"({"class_name": "Dense", "config": {"name": "inner", "units": 2}})");
  absl::StatusOr<KerasLayer> layer = ParseKerasLayer(entry, "here");
  ASSERT_TRUE(layer.ok()) << layer.status();
  EXPECT_EQ(layer->name, "inner");
  EXPECT_EQ(layer->Label(), "layer 'inner' (Dense)");
  const google::protobuf::Value named = ParseJsonValue(
      R"({"class_name": "Dense", "name": "outer", "config": {"name": "x"}})");
  EXPECT_EQ(ParseKerasLayer(named, "here")->name, "outer");
}

TEST(ParseKerasLayerTest, NeedsClassNameAndConfig) {
  for (const char* bad :
       {R"({"config": {}})", R"({"class_name": "Dense"})", R"([])"}) {
    absl::StatusOr<KerasLayer> layer =
        ParseKerasLayer(ParseJsonValue(bad), "layers[3]");
    EXPECT_EQ(layer.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(layer.status().message(), HasSubstr("layers[3]: expected"));
  }
}

TEST(ParseKerasLayersTest, NamesTheEntryThatFails) {
  const google::protobuf::Value list = ParseJsonValue(
      R"([{"class_name": "Dense", "config": {}}, {"class_name": "Dense"}])");
  absl::StatusOr<std::vector<KerasLayer>> layers =
      ParseKerasLayers(list.list_value());
  EXPECT_THAT(layers.status().message(), HasSubstr("layers[1]: expected"));
}

TEST(KerasLayerKindsTest, InputLayersAndNoOps) {
  EXPECT_TRUE(IsInputLayer({"InputLayer"}));
  EXPECT_FALSE(IsInputLayer({"Dense"}));
  EXPECT_TRUE(IsInferenceNoOp({"Dropout"}));
  EXPECT_TRUE(IsInferenceNoOp({"SpatialDropout1D"}));
  EXPECT_FALSE(IsInferenceNoOp({"Masking"}));
}

TEST(InputSizeTest, LastDimensionOfEitherShapeKey) {
  EXPECT_EQ(InputSize(ParseJson(R"({"batch_input_shape": [null, null, 7]})")),
            7);
  EXPECT_EQ(InputSize(ParseJson(R"({"batch_shape": [null, 5, 3]})")), 3);
  EXPECT_EQ(InputSize(ParseJson(R"({"batch_shape": [null, 5, null]})")),
            std::nullopt);
  EXPECT_EQ(InputSize(ParseJson(R"({})")), std::nullopt);
}

TEST(DeclaredTimeStepsTest, SecondDimensionOfAFeatureOrTokenShape) {
  EXPECT_EQ(
      DeclaredTimeSteps(ParseJson(R"({"batch_input_shape": [null, 200, 64]})"),
                        /*token_input=*/false),
      200);
  EXPECT_EQ(DeclaredTimeSteps(ParseJson(R"({"batch_shape": [null, 12, 3]})"),
                              /*token_input=*/false),
            12);
  EXPECT_EQ(DeclaredTimeSteps(ParseJson(R"({"batch_shape": [null, 30]})"),
                              /*token_input=*/true),
            30);
  // Open, absent, or a shape of the other kind of input.
  EXPECT_EQ(
      DeclaredTimeSteps(ParseJson(R"({"batch_input_shape": [null, null, 7]})"),
                        /*token_input=*/false),
      std::nullopt);
  EXPECT_EQ(DeclaredTimeSteps(ParseJson(R"({})"), /*token_input=*/false),
            std::nullopt);
  EXPECT_EQ(DeclaredTimeSteps(ParseJson(R"({"batch_shape": [null, 7]})"),
                              /*token_input=*/false),
            std::nullopt);
  EXPECT_EQ(DeclaredTimeSteps(ParseJson(R"({"batch_shape": [null, 0, 3]})"),
                              /*token_input=*/false),
            std::nullopt);
}

}  // namespace
}  // namespace biserve::importers
