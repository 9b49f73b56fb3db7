#include "proto/model_codec.h"

#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "proto/read_file.h"

namespace biserve {
namespace {

using ::testing::HasSubstr;

// The worked example of docs/model-format.md: Bidirectional(SimpleRNN 1).
const std::string kTinyPath =
    std::string(BISERVE_SOURCE_DIR) + "/tests/data/tiny.pbtxt";

std::string TinyText() { return *ReadFile(kTinyPath, "the tiny model"); }

std::string WriteFile(const std::string& name, const std::string& content) {
  // Named after the test: CTest runs tests in parallel processes.
  const std::string path =
      ::testing::TempDir() + "/" +
      ::testing::UnitTest::GetInstance()->current_test_info()->name() + "_" +
      name;
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

v1::Model TinyProto() {
  v1::Model proto;
  EXPECT_TRUE(
      google::protobuf::TextFormat::ParseFromString(TinyText(), &proto));
  return proto;
}

TEST(ModelCodecTest, LoadsTextBinaryAndJsonAlike) {
  const v1::Model proto = TinyProto();
  std::string binary;
  ASSERT_TRUE(proto.SerializeToString(&binary));
  for (const std::string& path :
       {kTinyPath, WriteFile("tiny.pb", binary),
        WriteFile(
            "tiny.json",
            R"({"name": "tiny", "input_dim": 1, "layers": [{"bidirectional": {
          "layer": {"cell": "SIMPLE_RNN", "units": 1, "activation": "relu",
            "return_sequences": true, "weights": {
              "kernel": {"shape": [1, 1], "values": [0.5]},
              "recurrent_kernel": {"shape": [1, 1], "values": [0.25]},
              "bias": {"shape": [1], "values": [0.1]}}},
          "backward_weights": {
              "kernel": {"shape": [1, 1], "values": [0.5]},
              "recurrent_kernel": {"shape": [1, 1], "values": [0.75]},
              "bias": {"shape": [1], "values": [0.2]}},
          "merge_mode": "sum"}}]})")}) {
    SCOPED_TRACE(path);
    auto model = LoadModelFile(path);
    ASSERT_TRUE(model.ok()) << model.status();
    EXPECT_EQ((*model)->name(), "tiny");
    const BidirectionalLayer& b = (*model)->bidirectional(0);
    EXPECT_EQ(b.forward.activation, Activation::kRelu);
    EXPECT_EQ(b.backward.activation, Activation::kRelu);  // copied config
    EXPECT_TRUE(b.backward.go_backwards);
    EXPECT_EQ(b.merge_mode, MergeMode::kSum);
    EXPECT_FLOAT_EQ(b.backward.recurrent_kernel(0, 0), 0.75f);
  }
}

TEST(ModelCodecTest, KeepsPresenceOfOptionalFields) {
  v1::Model proto = TinyProto();
  ModelSpec spec = ModelSpecFromProto(proto);
  const auto& bidi = std::get<BidirectionalSpec>(spec.layers[0]);
  EXPECT_EQ(bidi.layer.activation, "relu");
  EXPECT_FALSE(bidi.layer.use_bias.has_value());
  EXPECT_FALSE(bidi.layer.recurrent_activation.has_value());
  EXPECT_FALSE(bidi.backward_layer.has_value());
  ASSERT_TRUE(bidi.backward_weights.has_value());
  EXPECT_EQ(bidi.backward_weights->bias.shape, std::vector<int64_t>{1});
}

TEST(ModelCodecTest, CopiesDeclaredTimeSteps) {
  v1::Model proto = TinyProto();
  EXPECT_EQ(ModelSpecFromProto(proto).declared_time_steps, 0);
  proto.set_declared_time_steps(200);
  EXPECT_EQ(ModelSpecFromProto(proto).declared_time_steps, 200);
}

TEST(ModelCodecTest, MapsEveryLayerKind) {
  v1::Model proto;
  proto.add_layers()->mutable_embedding()->set_output_dim(3);
  proto.add_layers()->mutable_dense()->set_use_bias(false);
  proto.add_layers();
  ModelSpec spec = ModelSpecFromProto(proto);
  ASSERT_EQ(spec.layers.size(), 3u);
  EXPECT_EQ(std::get<EmbeddingSpec>(spec.layers[0]).output_dim, 3);
  EXPECT_EQ(std::get<DenseSpec>(spec.layers[1]).use_bias, false);
  EXPECT_TRUE(std::holds_alternative<std::monostate>(spec.layers[2]));
}

TEST(ModelCodecTest, MissingFileIsNotFound) {
  auto model = LoadModelFile(::testing::TempDir() + "/no/such/model.pb");
  EXPECT_EQ(model.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(model.status().message(), HasSubstr("cannot open"));
}

TEST(ModelCodecTest, CorruptBinaryIsInvalidArgument) {
  auto model = LoadModelFile(WriteFile("corrupt.pb", "\xff\xff\xff garbage"));
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(model.status().message(),
              HasSubstr("not a valid binary biserve.v1.Model"));
}

TEST(ModelCodecTest, TextErrorsGiveLineAndColumn) {
  auto model =
      LoadModelFile(WriteFile("bad.pbtxt", "name: \"x\"\ninput_dimm: 3\n"));
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(model.status().message(), HasSubstr("line 2, column 1"));
  EXPECT_THAT(model.status().message(), HasSubstr("input_dimm"));
}

TEST(ModelCodecTest, ValidationErrorsStartWithThePath) {
  std::string text = TinyText();
  text.replace(text.find("\"sum\""), 5, "\"max\"");
  const std::string path = WriteFile("badmerge.pbtxt", text);
  auto model = LoadModelFile(path);
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(model.status().message(), HasSubstr(path + ": layers[0]: "));
  EXPECT_THAT(model.status().message(), HasSubstr("invalid merge mode 'max'"));
}

}  // namespace
}  // namespace biserve
