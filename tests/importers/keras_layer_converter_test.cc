#include "importers/keras_layer_converter.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/importers/json_for_test.h"

namespace biserve::importers {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::ParseJsonValue;

// Converts the layer entry `json`; `weights` keeps what it did not take.
absl::StatusOr<v1::Layer> Convert(const std::string& json, WeightMap& weights,
                                  KerasFlavour flavour) {
  const google::protobuf::Value entry = ParseJsonValue(json);
  absl::StatusOr<KerasLayer> layer = ParseKerasLayer(entry, "test");
  if (!layer.ok()) return layer.status();
  return ConvertKerasLayer(*layer, weights, flavour);
}

void AddWeight(WeightMap& weights, const std::string& name,
               std::vector<int64_t> shape) {
  int64_t count = 1;
  for (int64_t d : shape) count *= d;
  weights[name] = Weight{shape, std::vector<float>(count, 0.5f)};
}

// An LSTM of one unit over one feature, both directions' weights.
WeightMap LstmWeights(const std::string& bidi) {
  WeightMap weights;
  for (const char* direction : {"forward_lstm", "backward_lstm"}) {
    const std::string cell = bidi + "/" + direction + "/lstm_cell/";
    AddWeight(weights, cell + "kernel", {1, 4});
    AddWeight(weights, cell + "recurrent_kernel", {1, 4});
    AddWeight(weights, cell + "bias", {4});
  }
  return weights;
}

constexpr char kBidirectionalLstm[] = R"({"class_name": "Bidirectional",
  "config": {"name": "bidi", "merge_mode": null, "layer": {
    "class_name": "LSTM", "config": {"name": "lstm", "units": 1,
    "return_sequences": true}}}})";

TEST(ConvertKerasLayerTest, BidirectionalWithKerasDefaultBackwardLayer) {
  WeightMap weights = LstmWeights("bidi");
  absl::StatusOr<v1::Layer> layer =
      Convert(kBidirectionalLstm, weights, KerasFlavour::kKeras2);
  ASSERT_TRUE(layer.ok()) << layer.status();
  const v1::BidirectionalLayer& bidi = layer->bidirectional();
  EXPECT_EQ(bidi.name(), "bidi");
  EXPECT_EQ(bidi.merge_mode(), "none");
  EXPECT_EQ(bidi.layer().cell(), v1::LSTM);
  EXPECT_EQ(bidi.layer().units(), 1);
  EXPECT_EQ(bidi.layer().activation(), "tanh");
  EXPECT_EQ(bidi.layer().recurrent_activation(), "sigmoid");
  EXPECT_TRUE(bidi.layer().return_sequences());
  EXPECT_FALSE(bidi.has_backward_layer());
  EXPECT_THAT(bidi.backward_weights().bias().shape(), ElementsAre(4));
  EXPECT_EQ(bidi.masked_step_output(), v1::MASKED_STEP_OUTPUT_ZEROS);
  EXPECT_EQ(FirstUnusedWeight(weights), std::nullopt);
}

TEST(ConvertKerasLayerTest, TfjsDefaultsAndMaskedSteps) {
  WeightMap weights = LstmWeights("bidi");
  std::string json = kBidirectionalLstm;
  json.replace(json.find("\"merge_mode\": null"), 18,
               "\"merge_mode\": \"concat\"");
  absl::StatusOr<v1::Layer> layer = Convert(json, weights, KerasFlavour::kTfjs);
  ASSERT_TRUE(layer.ok()) << layer.status();
  EXPECT_EQ(layer->bidirectional().merge_mode(), "concat");
  EXPECT_EQ(layer->bidirectional().layer().recurrent_activation(),
            "hard_sigmoid");
  EXPECT_EQ(layer->bidirectional().masked_step_output(),
            v1::MASKED_STEP_OUTPUT_STATE);
}

TEST(ConvertKerasLayerTest, RecurrentOptionsBiserveDoesNotDo) {
  for (const char* option : {"\"stateful\": true", "\"time_major\": true"}) {
    WeightMap weights = LstmWeights("bidi");
    std::string json = kBidirectionalLstm;
    json.replace(json.find("\"units\": 1"), 10,
                 std::string("\"units\": 1, ") + option);
    EXPECT_THAT(
        Convert(json, weights, KerasFlavour::kKeras2).status().message(),
        HasSubstr("layer 'bidi' (Bidirectional) forward layer 'lstm' "
                  "(LSTM): "))
        << option;
  }
  WeightMap weights;
  std::string conv = kBidirectionalLstm;
  conv.replace(conv.find("\"LSTM\""), 6, "\"Conv1D\"");
  EXPECT_THAT(Convert(conv, weights, KerasFlavour::kKeras2).status().message(),
              HasSubstr("a Bidirectional layer over Conv1D is not supported"));
}

TEST(ConvertKerasLayerTest, MissingWeightNamesTheDirection) {
  WeightMap weights = LstmWeights("bidi");
  weights.erase("bidi/backward_lstm/lstm_cell/recurrent_kernel");
  EXPECT_THAT(Convert(kBidirectionalLstm, weights, KerasFlavour::kKeras2)
                  .status()
                  .message(),
              HasSubstr("backward copy of layer 'lstm' (LSTM): weight "
                        "'recurrent_kernel' is missing"));
}

TEST(ConvertKerasLayerTest, TimeDistributedDenseTakesTheOuterName) {
  WeightMap weights;
  AddWeight(weights, "td/kernel", {2, 3});
  AddWeight(weights, "td/bias", {3});
  absl::StatusOr<v1::Layer> layer = Convert(
      R"({"class_name": "TimeDistributed", "config": {"name": "td", "layer":
          {"class_name": "Dense", "config": {"name": "dense", "units": 3,
           "activation": "softmax"}}}})",
      weights, KerasFlavour::kKeras2);
  ASSERT_TRUE(layer.ok()) << layer.status();
  EXPECT_EQ(layer->dense().name(), "td");
  EXPECT_EQ(layer->dense().units(), 3);
  EXPECT_EQ(layer->dense().activation(), "softmax");
  EXPECT_THAT(layer->dense().kernel().shape(), ElementsAre(2, 3));
}

TEST(ConvertKerasLayerTest, EmbeddingAndMasking) {
  WeightMap weights;
  AddWeight(weights, "emb/embeddings", {5, 2});
  absl::StatusOr<v1::Layer> embedding = Convert(
      R"({"class_name": "Embedding", "config": {"name": "emb",
          "input_dim": 5, "output_dim": 2, "mask_zero": true}})",
      weights, KerasFlavour::kKeras2);
  ASSERT_TRUE(embedding.ok()) << embedding.status();
  EXPECT_EQ(embedding->embedding().input_dim(), 5);
  EXPECT_TRUE(embedding->embedding().mask_zero());
  absl::StatusOr<v1::Layer> masking = Convert(
      R"({"class_name": "Masking", "config": {"name": "m",
          "mask_value": -1}})",
      weights, KerasFlavour::kKeras2);
  ASSERT_TRUE(masking.ok()) << masking.status();
  EXPECT_EQ(masking->masking().mask_value(), -1.0f);
}

TEST(ConvertKerasLayerTest, RefusesOtherLayerKinds) {
  WeightMap weights;
  EXPECT_THAT(Convert(R"({"class_name": "GRU", "config": {"name": "g"}})",
                      weights, KerasFlavour::kKeras2)
                  .status()
                  .message(),
              HasSubstr("outside a Bidirectional wrapper"));
  EXPECT_THAT(Convert(R"({"class_name": "Conv1D", "config": {"name": "c"}})",
                      weights, KerasFlavour::kKeras2)
                  .status()
                  .message(),
              HasSubstr("layer 'c' (Conv1D): layer type not supported"));
  EXPECT_THAT(
      Convert(R"({"class_name": "TimeDistributed", "config": {"name": "t",
                  "layer": {"class_name": "LSTM", "config": {}}}})",
              weights, KerasFlavour::kKeras2)
          .status()
          .message(),
      HasSubstr("TimeDistributed(LSTM) is not supported"));
}

}  // namespace
}  // namespace biserve::importers
