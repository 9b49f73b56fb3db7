#include "importers/keras_extra_layers.h"

#include <optional>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/importers/json_for_test.h"

namespace biserve::importers {
namespace {

using ::testing::HasSubstr;
using testing::ParseJsonValue;

// Converts the layer entry `json` on a sequence input or a vector one.
absl::StatusOr<std::optional<v1::Layer>> Convert(
    const std::string& json, WeightMap& weights, bool sequence = true,
    KerasFlavour flavour = KerasFlavour::kKeras2) {
  const google::protobuf::Value entry = ParseJsonValue(json);
  absl::StatusOr<KerasLayer> layer = ParseKerasLayer(entry, "test");
  if (!layer.ok()) return layer.status();
  EXPECT_TRUE(IsExtraLayer(*layer));
  return ConvertExtraLayer(*layer, weights, flavour, sequence);
}

void AddWeight(WeightMap& weights, const std::string& name, int size) {
  weights[name] = Weight{{size}, std::vector<float>(size, 0.5f)};
}

TEST(KerasExtraLayersTest, BatchNormalizationTakesItsFourWeightsByName) {
  WeightMap weights;
  for (const char* leaf : {"gamma", "beta", "moving_mean", "moving_variance"}) {
    AddWeight(weights, std::string("bn/") + leaf, 3);
  }
  auto layer = Convert(R"({"class_name": "BatchNormalization", "config": {
      "name": "bn", "axis": [2], "epsilon": 0.01, "momentum": 0.9}})",
                       weights);
  ASSERT_TRUE(layer.ok()) << layer.status();
  const v1::BatchNormalizationLayer& bn = (*layer)->batch_normalization();
  EXPECT_EQ(bn.name(), "bn");
  EXPECT_FLOAT_EQ(bn.epsilon(), 0.01f);
  EXPECT_EQ(bn.moving_variance().shape(0), 3);
  EXPECT_FALSE(FirstUnusedWeight(weights).has_value());
}

TEST(KerasExtraLayersTest,
     NormalizationWithoutScaleOrCenterTakesNoGammaOrBeta) {
  WeightMap weights;
  AddWeight(weights, "ln/gamma", 4);
  auto layer = Convert(R"({"class_name": "LayerNormalization", "config": {
      "name": "ln", "axis": -1, "center": false}})",
                       weights);
  ASSERT_TRUE(layer.ok()) << layer.status();
  EXPECT_FALSE((*layer)->layer_normalization().center());
  EXPECT_FALSE((*layer)->layer_normalization().has_beta());
  EXPECT_TRUE((*layer)->layer_normalization().has_gamma());
}

TEST(KerasExtraLayersTest, NormalizationAxisMustBeTheFeatures) {
  WeightMap weights;
  AddWeight(weights, "ln/gamma", 4);
  AddWeight(weights, "ln/beta", 4);
  const std::string time_axis = R"({"class_name": "LayerNormalization",
      "config": {"name": "ln", "axis": [1]}})";
  EXPECT_THAT(Convert(time_axis, weights).status().message(),
              HasSubstr("layer 'ln' (LayerNormalization): axis must be the "
                        "feature axis (-1 or 2 here)"));
  // On a vector, axis 1 is the features.
  EXPECT_TRUE(Convert(time_axis, weights, /*sequence=*/false).ok());
}

TEST(KerasExtraLayersTest, RmsScalingAndRenormAreRefused) {
  WeightMap weights;
  EXPECT_THAT(Convert(R"({"class_name": "LayerNormalization", "config": {
      "name": "ln", "rms_scaling": true}})",
                      weights)
                  .status()
                  .message(),
              HasSubstr("rms_scaling = true is not supported"));
  EXPECT_THAT(Convert(R"({"class_name": "BatchNormalization", "config": {
      "name": "bn", "renorm": true}})",
                      weights)
                  .status()
                  .message(),
              HasSubstr("renorm = true is not supported"));
}

TEST(KerasExtraLayersTest, PoolingKindsAliasesAndRefusedOptions) {
  WeightMap weights;
  auto max = Convert(R"({"class_name": "GlobalMaxPool1D", "config": {
      "name": "p", "data_format": "channels_last", "keepdims": false}})",
                     weights);
  ASSERT_TRUE(max.ok()) << max.status();
  EXPECT_EQ((*max)->global_pooling().pooling(), v1::MAX);
  auto average = Convert(
      R"({"class_name": "GlobalAveragePooling1D", "config": {"name": "p"}})",
      weights);
  ASSERT_TRUE(average.ok()) << average.status();
  EXPECT_EQ((*average)->global_pooling().pooling(), v1::AVERAGE);
  EXPECT_THAT(Convert(R"({"class_name": "GlobalAveragePooling1D", "config": {
      "name": "p", "keepdims": true}})",
                      weights)
                  .status()
                  .message(),
              HasSubstr("keepdims = true is not supported"));
  EXPECT_THAT(Convert(R"({"class_name": "GlobalMaxPooling1D", "config": {
      "name": "p", "data_format": "channels_first"}})",
                      weights)
                  .status()
                  .message(),
              HasSubstr("data_format 'channels_first' is not supported"));
  EXPECT_THAT(Convert(R"({"class_name": "GlobalMaxPooling1D", "config": {
      "name": "p"}})",
                      weights, /*sequence=*/false)
                  .status()
                  .message(),
              HasSubstr("global pooling needs a sequence"));
}

TEST(KerasExtraLayersTest, ActivationTakesAnyKerasSpelling) {
  WeightMap weights;
  auto layer = Convert(R"({"class_name": "Activation", "config": {
      "name": "a", "activation": "hardSigmoid"}})",
                       weights, true, KerasFlavour::kTfjs);
  ASSERT_TRUE(layer.ok()) << layer.status();
  EXPECT_EQ((*layer)->activation().activation(), "hard_sigmoid");
}

TEST(KerasExtraLayersTest, FlattenIsANoOpOnAVectorOnly) {
  WeightMap weights;
  const std::string flatten =
      R"({"class_name": "Flatten", "config": {"name": "flatten"}})";
  auto vector = Convert(flatten, weights, /*sequence=*/false);
  ASSERT_TRUE(vector.ok()) << vector.status();
  EXPECT_FALSE(vector->has_value());
  EXPECT_THAT(Convert(flatten, weights).status().message(),
              HasSubstr("Flatten of a sequence ([T, D] to [T * D]) is not "
                        "supported"));
}

TEST(KerasExtraLayersTest, NoiseAndDropoutLayersAreIdentities) {
  for (const char* kind : {"Dropout", "SpatialDropout1D", "GaussianNoise",
                           "GaussianDropout", "AlphaDropout"}) {
    EXPECT_TRUE(IsInferenceIdentity({kind})) << kind;
  }
  EXPECT_FALSE(IsInferenceIdentity({"Flatten"}));
}

TEST(KerasExtraLayersTest, OutputsSequenceFollowsPoolingAndReturnSequences) {
  v1::Model model;
  EXPECT_TRUE(OutputsSequence(model));
  model.add_layers()
      ->mutable_bidirectional()
      ->mutable_layer()
      ->set_return_sequences(true);
  EXPECT_TRUE(OutputsSequence(model));
  model.add_layers()->mutable_global_pooling();
  EXPECT_FALSE(OutputsSequence(model));
  model.add_layers()->mutable_dense();
  EXPECT_FALSE(OutputsSequence(model));
}

}  // namespace
}  // namespace biserve::importers
