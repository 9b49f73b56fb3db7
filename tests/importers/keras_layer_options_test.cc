#include "importers/keras_layer_options.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/importers/json_for_test.h"

namespace biserve::importers {
namespace {

using ::testing::HasSubstr;
using testing::ParseJson;

std::string Activation(const char* config, KerasFlavour flavour) {
  absl::StatusOr<std::string> name = ActivationOption(
      ParseJson(config), "activation", "tanh", flavour, "here");
  return name.ok() ? *name : name.status().ToString();
}

TEST(ActivationOptionTest, ReadsEveryFlavoursSpelling) {
  EXPECT_EQ(Activation(R"({"activation": "relu"})", KerasFlavour::kKeras2),
            "relu");
  EXPECT_EQ(Activation(R"({"activation": "hardSigmoid"})", KerasFlavour::kTfjs),
            "hard_sigmoid");
  EXPECT_EQ(Activation(R"({"activation": {"module": "keras.activations",
                           "class_name": "function", "config": "softsign"}})",
                       KerasFlavour::kKeras3),
            "softsign");
  EXPECT_EQ(Activation(R"({})", KerasFlavour::kKeras2), "tanh");
  EXPECT_EQ(Activation(R"({"activation": null})", KerasFlavour::kKeras2),
            "tanh");
}

TEST(ActivationOptionTest, Keras3HardSigmoidIsItsOwnFunction) {
  EXPECT_EQ(
      Activation(R"({"activation": "hard_sigmoid"})", KerasFlavour::kKeras2),
      "hard_sigmoid");
  EXPECT_EQ(
      Activation(R"({"activation": "hard_sigmoid"})", KerasFlavour::kKeras3),
      "hard_sigmoid_keras3");
}

TEST(ActivationOptionTest, RefusesUnknownAndCustomActivations) {
  EXPECT_THAT(Activation(R"({"activation": "gelu_x"})", KerasFlavour::kKeras2),
              HasSubstr("here: activation 'gelu_x' is not supported"));
  EXPECT_THAT(Activation(R"({"activation": {"class_name": "MyAct"}})",
                         KerasFlavour::kKeras3),
              HasSubstr("a custom activation object is not supported"));
  EXPECT_THAT(Activation(R"({"activation": 3})", KerasFlavour::kKeras2),
              HasSubstr("activation: expected a name"));
}

TEST(CheckCommonOptionsTest, AcceptsOnlyFloat32) {
  EXPECT_TRUE(CheckCommonOptions(ParseJson(R"({})"), "here").ok());
  EXPECT_TRUE(
      CheckCommonOptions(ParseJson(R"({"dtype": "float32"})"), "here").ok());
  const absl::Status half =
      CheckCommonOptions(ParseJson(R"({"dtype": "float16"})"), "here");
  EXPECT_THAT(half.message(),
              HasSubstr("here: dtype float16 is not supported"));
  const absl::Status policy =
      CheckCommonOptions(ParseJson(R"({"dtype": {"class_name": "DTypePolicy",
                              "config": {"name": "mixed_float16"}}})"),
                         "here");
  EXPECT_THAT(policy.message(), HasSubstr("dtype mixed_float16"));
}

TEST(UnitsOptionTest, MustBePositive) {
  EXPECT_EQ(*UnitsOption(ParseJson(R"({"units": 8})"), "here"), 8);
  for (const char* bad : {R"({})", R"({"units": 0})", R"({"units": "8"})"}) {
    EXPECT_THAT(UnitsOption(ParseJson(bad), "here").status().message(),
                HasSubstr("units must be a positive number"))
        << bad;
  }
}

}  // namespace
}  // namespace biserve::importers
