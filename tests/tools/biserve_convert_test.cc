// biserve_convert as a user runs it, then biserve_eval on what it wrote.
#include <filesystem>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/command.h"
#include "tests/tools/onnx_fixture.h"

namespace biserve {
namespace {

using ::testing::HasSubstr;
using testing::RunCommand;
using testing::TestPath;

const std::string kBin = std::string(BISERVE_BIN_DIR);
const std::string kModels =
    std::string(BISERVE_SOURCE_DIR) + "/tests/golden/tfjs_models";

TEST(BiserveConvertTest, ConvertsIntoARepositoryLayoutThatEvaluates) {
  const std::string out = TestPath("repo") + "/tagger/3/model.pb";
  auto convert = RunCommand(kBin + "/biserve_convert --from tfjs " + kModels +
                            "/tfjs_lstm_concat_seq_td_softmax/model.json" +
                            " --out " + out);
  ASSERT_EQ(convert.exit_code, 0) << convert.out;
  EXPECT_THAT(convert.out, HasSubstr("model 'tagger'"));  // from the folder
  ASSERT_TRUE(std::filesystem::exists(out));
  EXPECT_FALSE(std::filesystem::exists(out + ".tmp"));
  auto eval =
      RunCommand("echo '{\"sequences\": [[[0.1, 0.2, 0.3, 0.4, 0.5]]]}' | " +
                 kBin + "/biserve_eval --model " + out);
  ASSERT_EQ(eval.exit_code, 0) << eval.out;
  EXPECT_THAT(eval.out, HasSubstr("\"output\": [["));
}

TEST(BiserveConvertTest, WritesTextFormatOnRequest) {
  const std::string out = TestPath("model.pbtxt");
  auto convert = RunCommand(
      kBin + "/biserve_convert --name named " + kModels +
      "/keras_gru_reset_after_concat_seq_td_softmax/model.json --out " + out);
  ASSERT_EQ(convert.exit_code, 0) << convert.out;
  auto eval = RunCommand("echo '{\"sequences\": [[[1, 2, 3, 4, 5]]]}' | " +
                         kBin + "/biserve_eval --model " + out);
  EXPECT_EQ(eval.exit_code, 0) << eval.out;
  auto head = RunCommand("head -c 400 " + out);
  EXPECT_THAT(head.out, HasSubstr("name: \"named\""));
  EXPECT_THAT(head.out, HasSubstr("reset_after: true"));
}

TEST(BiserveConvertTest, UnsupportedModelFailsNamingTheLayerAndWritesNothing) {
  const std::string out = TestPath("bad.pb");
  auto convert = RunCommand(kBin + "/biserve_convert --from tfjs " + kModels +
                            "/bad_stateful/model.json --out " + out);
  EXPECT_EQ(convert.exit_code, 1);
  EXPECT_THAT(convert.out, HasSubstr("biserve_convert: layer '"));
  EXPECT_THAT(convert.out, HasSubstr("stateful"));
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST(BiserveConvertTest, UsageErrors) {
  auto no_out = RunCommand(kBin + "/biserve_convert --from tfjs x.json");
  EXPECT_EQ(no_out.exit_code, 1);
  EXPECT_THAT(no_out.out, HasSubstr("--out is required"));
  auto wrong_from = RunCommand(
      kBin + "/biserve_convert --from caffe x.caffemodel --out y.pb");
  EXPECT_EQ(wrong_from.exit_code, 1);
  EXPECT_THAT(wrong_from.out, HasSubstr("--from must be tfjs, keras or onnx"));
  auto no_input = RunCommand(kBin + "/biserve_convert --from onnx --out y.pb");
  EXPECT_EQ(no_input.exit_code, 1);
  EXPECT_THAT(no_input.out, HasSubstr("expected one input"));
}

TEST(BiserveConvertTest, CorruptOnnxFailsNamingTheFileAndWritesNothing) {
  const std::string onnx =
      testing::WriteTestFile("corrupt.onnx", "\x08\xff\xff not a model");
  const std::string out = TestPath("repo") + "/m/1/model.pb";
  auto convert = RunCommand(kBin + "/biserve_convert --from onnx " + onnx +
                            " --out " + out);
  EXPECT_EQ(convert.exit_code, 1);
  EXPECT_THAT(convert.out, HasSubstr("biserve_convert: " + onnx));
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST(BiserveConvertTest, MissingOnnxFileFailsNamingIt) {
  const std::string onnx = TestPath("no_such.onnx");
  auto convert = RunCommand(kBin + "/biserve_convert --from onnx " + onnx +
                            " --out " + TestPath("out.pb"));
  EXPECT_EQ(convert.exit_code, 1);
  EXPECT_THAT(convert.out, HasSubstr(onnx));
}

// Waits for the importer (importers/onnx_importer.cc) and the fixtures.
TEST(BiserveConvertTest, OnnxConvertsIntoARepositoryLayoutThatEvaluates) {
  const std::string onnx =
      testing::FindOnnxFixture("lstm", {"embed", "refuse"});
  if (onnx.empty()) GTEST_SKIP() << "no tests/onnx/fixtures/*lstm*.onnx yet";
  const std::string out = TestPath("repo") + "/tagger/2/model.pbtxt";
  auto convert = RunCommand(kBin + "/biserve_convert --from onnx " + onnx +
                            " --out " + out);
  ASSERT_EQ(convert.exit_code, 0) << convert.out;
  EXPECT_THAT(convert.out, HasSubstr("model 'tagger'"));  // from the folder
  EXPECT_FALSE(std::filesystem::exists(out + ".tmp"));
  // One sequence of 3 steps of input_dim features, whatever the fixture's
  // width: the .pbtxt says it.
  auto dim = RunCommand("sed -n 's/^input_dim: \\([0-9]*\\)$/\\1/p' " + out);
  ASSERT_FALSE(dim.out.empty()) << "no input_dim in " << out;
  const std::string input = TestPath("in.json");
  auto write = RunCommand(
      "python3 -c 'import json,sys; d=int(sys.argv[1]); print(json.dumps("
      "{\"sequences\": [[[0.1 * ((i + t) % 7) for i in range(d)] for t in "
      "range(3)]]}))' " +
      dim.out.substr(0, dim.out.find('\n')) + " > " + input);
  ASSERT_EQ(write.exit_code, 0) << write.out;
  // The converted file and the .onnx itself give the same answer.
  auto from_pb =
      RunCommand(kBin + "/biserve_eval --model " + out + " --input " + input);
  ASSERT_EQ(from_pb.exit_code, 0) << from_pb.out;
  EXPECT_THAT(from_pb.out, HasSubstr("\"output\": [["));
  auto from_onnx =
      RunCommand(kBin + "/biserve_eval --model " + onnx + " --input " + input);
  ASSERT_EQ(from_onnx.exit_code, 0) << from_onnx.out;
  EXPECT_EQ(from_onnx.out, from_pb.out);
}

}  // namespace
}  // namespace biserve
