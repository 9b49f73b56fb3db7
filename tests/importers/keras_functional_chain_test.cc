#include "importers/keras_functional_chain.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/importers/json_for_test.h"

namespace biserve::importers {
namespace {

using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using testing::ParseJson;
using testing::ParseJsonValue;

auto Ref(const std::string& layer, int tensor_index) {
  return AllOf(Field(&TensorRef::layer, layer),
               Field(&TensorRef::tensor_index, tensor_index));
}

absl::StatusOr<std::vector<TensorRef>> Inbound(
    const google::protobuf::Value& entry) {
  absl::StatusOr<KerasLayer> layer = ParseKerasLayer(entry, "test");
  EXPECT_TRUE(layer.ok()) << layer.status();
  return InboundTensors(*layer);
}

TEST(InboundTensorsTest, Keras2NodeWithInitialStatesInKwargs) {
  const google::protobuf::Value entry =
      ParseJsonValue(R"({"class_name": "Bidirectional", "name": "b",
      "config": {}, "inbound_nodes": [[["x", 0, 0, {"initial_state":
      [["h", 0, 0], ["c", 0, 1]]}]]]})");
  absl::StatusOr<std::vector<TensorRef>> refs = Inbound(entry);
  ASSERT_TRUE(refs.ok()) << refs.status();
  EXPECT_THAT(*refs, ElementsAre(Ref("x", 0), Ref("h", 0), Ref("c", 1)));
}

TEST(InboundTensorsTest, Keras3NodeWithArgsAndKwargs) {
  const google::protobuf::Value entry =
      ParseJsonValue(R"({"class_name": "Bidirectional", "name": "b",
      "config": {}, "inbound_nodes": [{"args": [
        {"class_name": "__keras_tensor__",
         "config": {"keras_history": ["x", 0, 0]}}],
      "kwargs": {"initial_state": [
        {"class_name": "__keras_tensor__",
         "config": {"keras_history": ["h", 0, 2]}}]}}]})");
  absl::StatusOr<std::vector<TensorRef>> refs = Inbound(entry);
  ASSERT_TRUE(refs.ok()) << refs.status();
  EXPECT_THAT(*refs, ElementsAre(Ref("x", 0), Ref("h", 2)));
}

TEST(InboundTensorsTest, NoNodesIsNoInputs) {
  const google::protobuf::Value entry = ParseJsonValue(
      R"({"class_name": "InputLayer", "name": "x", "config": {},
          "inbound_nodes": []})");
  EXPECT_THAT(*Inbound(entry), ElementsAre());
}

TEST(InboundTensorsTest, SharedLayersAndUnknownNodesAreRefused) {
  const struct {
    const char* nodes;
    const char* error;
  } cases[] = {
      {R"([[["x", 0, 0]], [["y", 0, 0]]])", "is called more than once"},
      {R"([[["x", 0]]])", "an inbound node is not understood"},
      {R"([{"args": [{"config": {}}]}])",
       "an inbound tensor is not understood"},
      {R"(["x"])", "inbound_nodes is not understood"},
  };
  for (const auto& c : cases) {
    const google::protobuf::Value entry =
        ParseJsonValue(std::string(R"({"class_name": "Dense", "name": "d",
            "config": {}, "inbound_nodes": )") +
                       c.nodes + "}");
    absl::StatusOr<std::vector<TensorRef>> refs = Inbound(entry);
    EXPECT_THAT(refs.status().message(),
                HasSubstr(std::string("layer 'd' (Dense): ") + c.error))
        << c.nodes;
  }
}

// input_1 (data), input_2 (an initial state) -> bidi -> dense.
constexpr char kStateModel[] = R"({
  "layers": [
    {"class_name": "InputLayer", "name": "input_2", "config": {},
     "inbound_nodes": []},
    {"class_name": "InputLayer", "name": "input_1", "config": {},
     "inbound_nodes": []},
    {"class_name": "Bidirectional", "name": "bidi", "config": {},
     "inbound_nodes": [[["input_1", 0, 0, {}], ["input_2", 0, 0, {}]]]},
    {"class_name": "Dense", "name": "dense", "config": {},
     "inbound_nodes": [[["bidi", 0, 0, {}]]]}],
  "input_layers": [["input_1", 0, 0], ["input_2", 0, 0]],
  "output_layers": [["dense", 0, 0], ["bidi", 0, 1]]})";

std::vector<std::string> Names(const std::vector<KerasLayer>& layers) {
  std::vector<std::string> names;
  for (const KerasLayer& layer : layers) names.push_back(layer.name);
  return names;
}

TEST(FunctionalChainTest, DataInputFirstAndStateInputsDropped) {
  const google::protobuf::Struct config = ParseJson(kStateModel);
  absl::StatusOr<KerasChain> chain = FunctionalChain(config);
  ASSERT_TRUE(chain.ok()) << chain.status();
  EXPECT_THAT(Names(chain->layers), ElementsAre("input_1", "bidi", "dense"));
  EXPECT_EQ(chain->initial_state_inputs, 1);
}

TEST(FunctionalChainTest, RefusesGraphsThatAreNotAChain) {
  std::string branch = kStateModel;  // dense fed by the input, not bidi
  branch.replace(branch.find(R"([[["bidi", 0, 0, {}]]])"), 22,
                 R"([[["input_1", 0, 0, {}]]])");
  const google::protobuf::Struct branch_config = ParseJson(branch);
  EXPECT_THAT(FunctionalChain(branch_config).status().message(),
              HasSubstr("biserve imports a chain of layers"));

  std::string output = kStateModel;  // an output of the data input
  output.replace(output.find(R"(["bidi", 0, 1])"), 14, R"(["input_1", 0, 0])");
  const google::protobuf::Struct output_config = ParseJson(output);
  EXPECT_THAT(FunctionalChain(output_config).status().message(),
              HasSubstr("output 'input_1' (output 0) is neither"));

  std::string unused = kStateModel;  // input_2 feeds nothing
  unused.replace(unused.find(R"(, ["input_2", 0, 0, {}])"), 23, "");
  const google::protobuf::Struct unused_config = ParseJson(unused);
  EXPECT_THAT(FunctionalChain(unused_config).status().message(),
              HasSubstr("input 'input_2' feeds neither"));
}

TEST(FunctionalChainTest, NeedsInputAndOutputLists) {
  const google::protobuf::Struct config =
      ParseJson(R"({"layers": [], "output_layers": []})");
  EXPECT_THAT(FunctionalChain(config).status().message(),
              HasSubstr("model config: no input_layers"));
}

}  // namespace
}  // namespace biserve::importers
