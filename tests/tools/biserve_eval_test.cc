// biserve_eval as a user runs it: a real process, real files, real exit codes.
#include <regex>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/command.h"

namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using ProcessResult = biserve::testing::CommandResult;

const std::string kEval = std::string(BISERVE_BIN_DIR) + "/biserve_eval";
const std::string kExample =
    std::string(BISERVE_SOURCE_DIR) + "/models/example/1/model.pbtxt";

ProcessResult Execute(const std::string& args) {
  return biserve::testing::RunCommand(kEval + " " + args);
}

std::string WriteInput(const std::string& name, const std::string& json) {
  return biserve::testing::WriteTestFile(name, json);
}

// Two sequences of the example model's 8 features, lengths 2 and 1.
const char kInput[] =
    R"({"sequences": [[[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8],
                       [0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]],
                      [[1, 0, 1, 0, 1, 0, 1, 0]]]})";

TEST(BiserveEvalTest, PrintsOneResultPerSequenceShapedLikeTheTensors) {
  ProcessResult run = Execute("--model " + kExample + " --input " +
                              WriteInput("in.json", kInput));
  ASSERT_EQ(run.exit_code, 0) << run.out;
  EXPECT_THAT(run.out, StartsWith("{\"results\": [\n  {\"output\": [["));
  // Softmax head of 4 classes per step: [2][4], then [1][4]; each row sums
  // to 1.
  const std::regex row(
      R"(\[([-0-9.e]+), ([-0-9.e]+), ([-0-9.e]+), ([-0-9.e]+)\])");
  int rows = 0;
  for (auto it = std::sregex_iterator(run.out.begin(), run.out.end(), row);
       it != std::sregex_iterator(); ++it, ++rows) {
    double sum = 0;
    for (int k = 1; k <= 4; ++k) sum += std::stod((*it)[k].str());
    EXPECT_NEAR(sum, 1.0, 1e-5);
  }
  EXPECT_EQ(rows, 3);
  EXPECT_EQ(std::count(run.out.begin(), run.out.end(), '{'), 3);
}

TEST(BiserveEvalTest, InputDashReadsStandardInputWithoutAWarning) {
  // Reported: "--input -" printed Abseil's "Did you really mean to set flag
  // 'input' to the value '-'?" (a check of std::string flags).
  const std::string file = WriteInput("in.json", kInput);
  ProcessResult dash = Execute("--model " + kExample + " --input - < " + file);
  ASSERT_EQ(dash.exit_code, 0) << dash.out;
  EXPECT_THAT(dash.out, StartsWith("{\"results\": ["));
  EXPECT_THAT(dash.out, Not(HasSubstr("Did you really mean")));
  EXPECT_EQ(dash.out, Execute("--model " + kExample + " --input " + file).out);
  EXPECT_EQ(dash.out, Execute("--model " + kExample + " < " + file).out);
}

TEST(BiserveEvalTest, DirectionsAndStatesOnRequest) {
  ProcessResult run =
      Execute("--model " + kExample + " --outputs both --states --input " +
              WriteInput("in.json", kInput));
  ASSERT_EQ(run.exit_code, 0) << run.out;
  EXPECT_THAT(run.out, HasSubstr("\"output\": "));
  EXPECT_THAT(run.out, HasSubstr("\"forward\": "));
  EXPECT_THAT(run.out, HasSubstr("\"backward\": "));
  EXPECT_THAT(run.out, HasSubstr("\"states\": "));
  ProcessResult directions =
      Execute("--model " + kExample + " --outputs directions --input " +
              WriteInput("in.json", kInput));
  ASSERT_EQ(directions.exit_code, 0) << directions.out;
  EXPECT_THAT(directions.out, ::testing::Not(HasSubstr("\"output\"")));
  EXPECT_THAT(directions.out, HasSubstr("\"forward\": "));
}

TEST(BiserveEvalTest, ReadsStandardInput) {
  ProcessResult run =
      Execute("--model " + kExample + " < " + WriteInput("in.json", kInput));
  EXPECT_EQ(run.exit_code, 0) << run.out;
  EXPECT_THAT(run.out, StartsWith("{\"results\""));
}

// The worked example of docs/model-format.md, computed there by hand.
TEST(BiserveEvalTest, DocumentedTinyModelGivesTheDocumentedOutput) {
  const std::string model =
      std::string(BISERVE_SOURCE_DIR) + "/tests/data/tiny.pbtxt";
  ProcessResult run =
      Execute("--model " + model + " --outputs both --input " +
              WriteInput("tiny.json", R"({"sequences": [[[1], [2]]]})"));
  ASSERT_EQ(run.exit_code, 0) << run.out;
  EXPECT_EQ(run.out,
            "{\"results\": [\n  {\"output\": [[2.2], [2.45]], \"forward\": "
            "[[0.6], [1.25]], \"backward\": [[1.6], [1.2]]}\n]}\n");
}

TEST(BiserveEvalTest, UnknownPackedIsaValueIsIgnoredWithAWarning) {
#ifndef __x86_64__
  GTEST_SKIP() << "the packed kernels are x86-64 only";
#endif
  ProcessResult run = biserve::testing::RunCommand(
      "BISERVE_PACKED_ISA=avx-512 " + kEval + " --model " + kExample +
      " --input " + WriteInput("in.json", kInput));
  ASSERT_EQ(run.exit_code, 0) << run.out;
  EXPECT_THAT(run.out, HasSubstr("BISERVE_PACKED_ISA=avx-512 ignored; "
                                 "expected avx2 or none"));
  EXPECT_THAT(run.out, HasSubstr("{\"results\": ["));
}

TEST(BiserveEvalTest, BadInputGivesAClearMessageAndNonZeroExit) {
  ProcessResult wrong_width =
      Execute("--model " + kExample + " --input " +
              WriteInput("bad.json", R"({"sequences": [[[0.1, 0.2]]]})"));
  EXPECT_NE(wrong_width.exit_code, 0);
  EXPECT_THAT(wrong_width.out,
              HasSubstr("sequences[0][0]: expected 8 numbers, got 2"));

  ProcessResult empty =
      Execute("--model " + kExample + " --input " +
              WriteInput("empty.json", R"({"sequences": [[]]})"));
  EXPECT_NE(empty.exit_code, 0);
  EXPECT_THAT(empty.out, HasSubstr("sequences[0]: length must be at least 1"));

  ProcessResult no_model =
      Execute("--model /nonexistent/model.pb --input x.json");
  EXPECT_NE(no_model.exit_code, 0);
  EXPECT_THAT(no_model.out, HasSubstr("cannot open the model file"));

  ProcessResult bad_flag = Execute("--model " + kExample + " --outputs all");
  EXPECT_NE(bad_flag.exit_code, 0);
  EXPECT_THAT(bad_flag.out, HasSubstr("--outputs must be merged, directions "
                                      "or both"));
}

TEST(BiserveEvalTest, CorruptOnnxGivesItsPathAndNonZeroExit) {
  const std::string onnx =
      WriteInput("corrupt.onnx", "\x0a\x7f truncated, not a ModelProto");
  ProcessResult run =
      Execute("--model " + onnx + " --input " + WriteInput("in.json", kInput));
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_THAT(run.out, StartsWith("biserve_eval: " + onnx));
  EXPECT_THAT(run.out, Not(HasSubstr("\"results\"")));
}

}  // namespace
