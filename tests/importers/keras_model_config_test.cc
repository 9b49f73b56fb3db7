#include "importers/keras_model_config.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/importers/json_for_test.h"

namespace biserve::importers {
namespace {

using ::testing::HasSubstr;
using testing::ParseJson;
using ::testing::SizeIs;

TEST(ParseKerasModelConfigTest, SequentialWithNameAndOldListForm) {
  const google::protobuf::Struct named = ParseJson(
      R"({"class_name": "Sequential", "config": {"name": "seq", "layers": [
          {"class_name": "Dense", "config": {"name": "d"}}]}})");
  absl::StatusOr<KerasModelConfig> config = ParseKerasModelConfig(named, "f");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->name, "seq");
  EXPECT_THAT(config->chain.layers, SizeIs(1));
  EXPECT_EQ(config->chain.initial_state_inputs, 0);

  const google::protobuf::Struct old = ParseJson(
      R"({"class_name": "Sequential", "config": [
          {"class_name": "Dense", "config": {"name": "d"}}]})");
  config = ParseKerasModelConfig(old, "f");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->name, "");
  EXPECT_THAT(config->chain.layers, SizeIs(1));
}

TEST(ParseKerasModelConfigTest, FunctionalGoesThroughItsChain) {
  const google::protobuf::Struct functional = ParseJson(
      R"({"class_name": "Functional", "config": {"name": "fn", "layers": [
          {"class_name": "InputLayer", "name": "in", "config": {},
           "inbound_nodes": []},
          {"class_name": "Dense", "name": "d", "config": {},
           "inbound_nodes": [[["in", 0, 0, {}]]]}],
        "input_layers": [["in", 0, 0]], "output_layers": [["d", 0, 0]]}})");
  absl::StatusOr<KerasModelConfig> config =
      ParseKerasModelConfig(functional, "f");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->name, "fn");
  EXPECT_THAT(config->chain.layers, SizeIs(2));
}

TEST(ParseKerasModelConfigTest, ErrorsNameTheFile) {
  const struct {
    const char* json;
    const char* error;
  } cases[] = {
      {R"({"class_name": "Sequential"})",
       "f: the model config has no \"config\""},
      {R"({"class_name": "Sequential", "config": {}})",
       "f: the Sequential config has no layers"},
      {R"({"class_name": "Functional", "config": []})",
       "f: the model config is not an object"},
      {R"({"class_name": "Subclassed", "config": {}})",
       "f: model class 'Subclassed' is not supported"},
  };
  for (const auto& c : cases) {
    const google::protobuf::Struct model_config = ParseJson(c.json);
    EXPECT_THAT(ParseKerasModelConfig(model_config, "f").status().message(),
                HasSubstr(c.error))
        << c.json;
  }
}

}  // namespace
}  // namespace biserve::importers
