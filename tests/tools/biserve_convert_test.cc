// biserve_convert as a user runs it, then biserve_eval on what it wrote.
#include <filesystem>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/command.h"

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
  auto wrong_from =
      RunCommand(kBin + "/biserve_convert --from onnx x.onnx --out y.pb");
  EXPECT_EQ(wrong_from.exit_code, 1);
  EXPECT_THAT(wrong_from.out, HasSubstr("--from must be tfjs"));
}

}  // namespace
}  // namespace biserve
