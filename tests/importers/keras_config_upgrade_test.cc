// UpgradeKerasModelConfig: old spellings brought to today's, checked on the
// JSON it rewrites.
#include "importers/keras_config_upgrade.h"

#include <string>

#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace biserve::importers {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string Upgraded(const std::string& json) {
  google::protobuf::Struct config;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &config).ok());
  UpgradeKerasModelConfig(config);
  std::string out;
  EXPECT_TRUE(google::protobuf::util::MessageToJsonString(config, &out).ok());
  return out;
}

TEST(KerasConfigUpgradeTest, Keras1SpellingsInABareList) {
  const std::string out = Upgraded(R"({"class_name": "Sequential", "config": [
      {"class_name": "Bidirectional", "config": {"layer": {
        "class_name": "LSTM", "config": {"output_dim": 10,
          "inner_activation": "hard_sigmoid"}}}},
      {"class_name": "Dense", "config": {"output_dim": 3, "bias": false}},
      {"class_name": "Embedding", "config": {"output_dim": 8}}]})");
  EXPECT_THAT(out, HasSubstr(R"("units":10)"));
  EXPECT_THAT(out, HasSubstr(R"("recurrent_activation":"hard_sigmoid")"));
  EXPECT_THAT(out, HasSubstr(R"("units":3)"));
  EXPECT_THAT(out, HasSubstr(R"("use_bias":false)"));
  EXPECT_THAT(out, HasSubstr(R"("output_dim":8)"));  // Embedding's stays
}

TEST(KerasConfigUpgradeTest, CudnnLayersBecomeTheLayersTheyLoadInto) {
  const std::string out = Upgraded(R"({"class_name": "Sequential", "config": {
      "layers": [{"class_name": "Bidirectional", "config": {"layer": {
        "class_name": "CuDNNGRU", "config": {"units": 4}}}}]}})");
  EXPECT_THAT(out, HasSubstr(R"("class_name":"GRU")"));
  EXPECT_THAT(out, HasSubstr(R"("reset_after":true)"));
  EXPECT_THAT(out, HasSubstr(R"("recurrent_activation":"sigmoid")"));
}

TEST(KerasConfigUpgradeTest, GruSavedBeforeResetAfterHasItFalse) {
  EXPECT_THAT(Upgraded(R"({"class_name": "Sequential", "config": [
      {"class_name": "GRU", "config": {"units": 4}}]})"),
              HasSubstr(R"("reset_after":false)"));
  EXPECT_THAT(Upgraded(R"({"class_name": "Sequential", "config": [
      {"class_name": "GRU", "config": {"units": 4, "reset_after": true}}]})"),
              Not(HasSubstr(R"("reset_after":false)")));
}

TEST(KerasConfigUpgradeTest, SequentialBuiltByFitGetsItsRecordedInputShape) {
  const std::string out = Upgraded(R"({"class_name": "Sequential",
      "build_config": {"input_shape": [null, 60, 3]},
      "config": {"layers": [{"class_name": "Bidirectional",
                             "config": {"name": "b"}}]}})");
  EXPECT_THAT(out, HasSubstr(R"("batch_input_shape":[null,60,3])"));
}

}  // namespace
}  // namespace biserve::importers
