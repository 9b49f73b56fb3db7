#include "importers/keras_model_converter.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
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
