#include "importers/keras_model_converter.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "importers/keras_config_upgrade.h"
#include "tests/importers/json_for_test.h"

namespace biserve::importers {
namespace {

using ::testing::HasSubstr;
using testing::ParseJson;

void AddWeight(WeightMap& weights, const std::string& name,
               std::vector<int64_t> shape) {
  int64_t count = 1;
  for (int64_t d : shape) count *= d;
  weights[name] = Weight{shape, std::vector<float>(count, 0.25f)};
}

// Input of 3 features -> Dropout -> Bidirectional(SimpleRNN, 2 units).
constexpr char kSequential[] = R"({"class_name": "Sequential", "config": {
  "name": "keras_name", "layers": [
    {"class_name": "Dropout", "config": {"name": "drop", "rate": 0.5,
     "batch_input_shape": [null, null, 3]}},
    {"class_name": "Bidirectional", "config": {"name": "bidi",
     "merge_mode": "concat", "layer": {"class_name": "SimpleRNN",
     "config": {"name": "rnn", "units": 2}}}}]}})";

WeightMap RnnWeights() {
  WeightMap weights;
  for (const char* direction : {"forward_rnn", "backward_rnn"}) {
    const std::string cell = std::string("bidi/") + direction + "/cell/";
    AddWeight(weights, cell + "kernel", {3, 2});
    AddWeight(weights, cell + "recurrent_kernel", {2, 2});
    AddWeight(weights, cell + "bias", {2});
  }
  return weights;
}

class KerasModelConverterTest : public ::testing::Test {
 protected:
  absl::StatusOr<v1::Model> Convert(const std::string& json,
                                    WeightMap& weights) {
    root_ = ParseJson(json);
    absl::StatusOr<KerasModelConfig> config =
        ParseKerasModelConfig(root_, "model.json");
    if (!config.ok()) return config.status();
    return ConvertKerasModel(*config, KerasFlavour::kKeras2, weights,
                             "served_name", "model.json");
  }

  google::protobuf::Struct root_;  // the layers point into it
};

TEST_F(KerasModelConverterTest, InputSizeFromTheFirstLayerBeforeNoOps) {
  WeightMap weights = RnnWeights();
  absl::StatusOr<v1::Model> model = Convert(kSequential, weights);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->name(), "served_name");
  EXPECT_EQ(model->input_dim(), 3);
  ASSERT_EQ(model->layers_size(), 1);  // the Dropout is gone
  EXPECT_TRUE(model->layers(0).has_bidirectional());
  EXPECT_EQ(model->declared_time_steps(), 0);  // [null, null, 3]: open
}

TEST_F(KerasModelConverterTest, DeclaredTimeStepsFromTheFirstLayersShape) {
  std::string json = kSequential;
  json.replace(json.find("[null, null, 3]"), 15, "[null, 200, 3]");
  WeightMap weights = RnnWeights();
  absl::StatusOr<v1::Model> model = Convert(json, weights);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->input_dim(), 3);
  EXPECT_EQ(model->declared_time_steps(), 200);
}

TEST_F(KerasModelConverterTest, DeclaredTimeStepsFromAnInputLayer) {
  // Keras 3 spells it batch_shape.
  const std::string json =
      R"({"class_name": "Sequential", "config": {"layers": [
    {"class_name": "InputLayer", "config": {"name": "in",
     "batch_shape": [null, 7, 3]}},)" +
      std::string(kSequential)
          .substr(std::string(kSequential)
                      .find(R"({"class_name": "Bidirectional")"));
  WeightMap weights = RnnWeights();
  absl::StatusOr<v1::Model> model = Convert(json, weights);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->declared_time_steps(), 7);
}

TEST_F(KerasModelConverterTest, DeclaredTimeStepsFromKeras3BuildConfig) {
  // A Sequential built by build(): no InputLayer, no batch_input_shape; the
  // upgrade copies build_config's input_shape to the first layer.
  root_ = ParseJson(R"({"class_name": "Sequential",
    "build_config": {"input_shape": [null, 12, 3]},
    "config": {"name": "built", "layers": [
    {"class_name": "Bidirectional", "config": {"name": "bidi",
     "merge_mode": "concat", "layer": {"class_name": "SimpleRNN",
     "config": {"name": "rnn", "units": 2}}}}]}})");
  UpgradeKerasModelConfig(root_);
  absl::StatusOr<KerasModelConfig> config =
      ParseKerasModelConfig(root_, "config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  WeightMap weights = RnnWeights();
  absl::StatusOr<v1::Model> model = ConvertKerasModel(
      *config, KerasFlavour::kKeras2, weights, "served_name", "config.json");
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->input_dim(), 3);
  EXPECT_EQ(model->declared_time_steps(), 12);
}

TEST_F(KerasModelConverterTest, EveryWeightMustBelongToALayer) {
  WeightMap weights = RnnWeights();
  AddWeight(weights, "stray/kernel", {1});
  EXPECT_THAT(Convert(kSequential, weights).status().message(),
              HasSubstr("model.json: weight 'stray/kernel' in the manifest "
                        "belongs to no imported layer"));
}

TEST_F(KerasModelConverterTest, UnknownInputSizeIsRefused) {
  std::string json = kSequential;
  json.replace(json.find("[null, null, 3]"), 15, "[null, null, null]");
  WeightMap weights = RnnWeights();
  EXPECT_THAT(Convert(json, weights).status().message(),
              HasSubstr("model: the input's feature size is unknown"));
}

TEST_F(KerasModelConverterTest, NeedsABidirectionalLayer) {
  WeightMap weights;
  EXPECT_THAT(
      Convert(R"({"class_name": "Sequential", "config": {"layers": []}})",
              weights)
          .status()
          .message(),
      HasSubstr("model: has no Bidirectional layer"));
}

TEST_F(KerasModelConverterTest, ModelThatDoesNotValidateSaysSo) {
  WeightMap weights = RnnWeights();
  weights["bidi/backward_rnn/cell/kernel"] = Weight{{2, 2}, {1, 2, 3, 4}};
  EXPECT_THAT(Convert(kSequential, weights).status().message(),
              HasSubstr("the converted model does not validate: "));
}

}  // namespace
}  // namespace biserve::importers
