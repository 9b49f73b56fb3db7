// AddLayerWeights: arrays named by their order, and the conversions Keras'
// loader makes (Keras 1 gate arrays, cuDNN weights), against numbers from
// Keras' own formulas (numpy: transform_kernels with
// k.T.reshape(k.shape, order='F'), k.T, and the summed biases).
#include "importers/keras_weight_names.h"

#include <numeric>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace biserve::importers {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

Weight Iota(std::vector<int64_t> shape, float start) {
  Weight w;
  w.shape = shape;
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  w.values.resize(n);
  std::iota(w.values.begin(), w.values.end(), start);
  return w;
}

struct ParsedLayer {
  google::protobuf::Value json;
  KerasLayer layer;
};

void Parse(const std::string& text, ParsedLayer& out) {
  ASSERT_TRUE(
      google::protobuf::util::JsonStringToMessage(text, &out.json).ok());
  auto layer = ParseKerasLayer(out.json, "test");
  ASSERT_TRUE(layer.ok()) << layer.status();
  out.layer = *layer;
}

TEST(KerasWeightNamesTest, BidirectionalForwardThenBackwardByOrder) {
  ParsedLayer p;
  Parse(R"({"class_name": "Bidirectional", "config": {"name": "bi",
            "layer": {"class_name": "GRU", "config": {"units": 1}}}})",
        p);
  std::vector<Weight> arrays;
  for (int i = 0; i < 6; ++i) arrays.push_back(Iota({1}, i));
  WeightMap weights;
  ASSERT_TRUE(AddLayerWeights(p.layer, arrays, {}, weights).ok());
  EXPECT_EQ(weights.at("bi/forward_layer/cell/kernel").values[0], 0);
  EXPECT_EQ(weights.at("bi/forward_layer/cell/bias").values[0], 2);
  EXPECT_EQ(weights.at("bi/backward_layer/cell/kernel").values[0], 3);
  EXPECT_EQ(weights.at("bi/backward_layer/cell/recurrent_kernel").values[0], 4);
}

TEST(KerasWeightNamesTest, CudnnLstmConvertedAsKerasDoes) {
  ParsedLayer p;
  Parse(R"({"class_name": "Bidirectional", "config": {"name": "bi",
            "layer": {"class_name": "LSTM", "config": {"units": 2}}}})",
        p);
  std::vector<Weight> arrays;
  for (int direction = 0; direction < 2; ++direction) {
    arrays.push_back(Iota({3, 8}, 0));    // kernel, input 3, units 2
    arrays.push_back(Iota({2, 8}, 100));  // recurrent kernel
    arrays.push_back(Iota({16}, 0));      // cuDNN's two biases
  }
  WeightMap weights;
  ASSERT_TRUE(AddLayerWeights(p.layer, arrays, {}, weights).ok());
  const Weight& kernel = weights.at("bi/backward_layer/cell/kernel");
  EXPECT_THAT(kernel.shape, ElementsAre(3, 8));
  EXPECT_THAT(kernel.values,
              ElementsAreArray({0, 9,  2, 11, 4, 13, 6,  15, 1,  16, 3,  18,
                                5, 20, 7, 22, 8, 17, 10, 19, 12, 21, 14, 23}));
  EXPECT_THAT(weights.at("bi/forward_layer/cell/recurrent_kernel").values,
              ElementsAreArray({100, 108, 102, 110, 104, 112, 106, 114, 101,
                                109, 103, 111, 105, 113, 107, 115}));
  EXPECT_THAT(weights.at("bi/forward_layer/cell/bias").values,
              ElementsAre(8, 10, 12, 14, 16, 18, 20, 22));
}

TEST(KerasWeightNamesTest, CudnnGruBiasBecomesTwoRows) {
  ParsedLayer p;
  Parse(R"({"class_name": "Bidirectional", "config": {"name": "bi",
            "layer": {"class_name": "GRU", "config": {"units": 2}}}})",
        p);
  std::vector<Weight> arrays;
  for (int direction = 0; direction < 2; ++direction) {
    arrays.push_back(Iota({3, 6}, 0));
    arrays.push_back(Iota({2, 6}, 100));
    arrays.push_back(Iota({12}, 0));
  }
  WeightMap weights;
  ASSERT_TRUE(AddLayerWeights(p.layer, arrays, {}, weights).ok());
  EXPECT_THAT(weights.at("bi/forward_layer/cell/bias").shape,
              ElementsAre(2, 6));
}

TEST(KerasWeightNamesTest, Keras1LstmGatesConcatenatedIFCO) {
  ParsedLayer p;
  Parse(R"({"class_name": "Bidirectional", "config": {"name": "bi",
            "layer": {"class_name": "LSTM", "config": {"units": 1}}}})",
        p);
  // Per direction W_i, U_i, b_i, W_c, U_c, b_c, W_f, U_f, b_f, W_o, U_o, b_o.
  std::vector<Weight> arrays;
  for (int i = 0; i < 24; ++i) arrays.push_back(Iota({1, 1}, i));
  for (int i = 2; i < 24; i += 3) arrays[i] = Iota({1}, i);
  WeightMap weights;
  ASSERT_TRUE(AddLayerWeights(p.layer, arrays, {}, weights).ok());
  EXPECT_THAT(weights.at("bi/forward_layer/cell/kernel").values,
              ElementsAre(0, 6, 3, 9));
  EXPECT_THAT(weights.at("bi/forward_layer/cell/recurrent_kernel").values,
              ElementsAre(1, 7, 4, 10));
  EXPECT_THAT(weights.at("bi/backward_layer/cell/bias").values,
              ElementsAre(14, 20, 17, 23));
}

TEST(KerasWeightNamesTest, TooManyArraysNamesTheLayer) {
  ParsedLayer p;
  Parse(R"({"class_name": "Dense", "config": {"name": "d", "units": 1}})", p);
  std::vector<Weight> arrays = {Iota({1, 1}, 0), Iota({1}, 0), Iota({1}, 0)};
  WeightMap weights;
  absl::Status s = AddLayerWeights(p.layer, arrays, {}, weights);
  EXPECT_THAT(s.message(), HasSubstr("layer 'd' (Dense)"));
}

}  // namespace
}  // namespace biserve::importers
