// The biserve command-line client as a user runs it, against a real server.
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/command.h"
#include "tests/server/server_fixture.h"

namespace biserve {
namespace {

using ::biserve::testing::BundledModelsServerTest;
using ::biserve::testing::RunCommand;
using ::biserve::testing::WriteTestFile;
using ::testing::HasSubstr;
using ::testing::Not;

class BiserveCliTest : public BundledModelsServerTest {
 protected:
  std::string Cli(const std::string& args) const {
    return CommandFor("biserve", args);
  }
};

TEST_F(BiserveCliTest, PredictsTheBracketsSampleFromProtobufJson) {
  auto result = RunCommand(Cli("predict --input=" BISERVE_SOURCE_DIR
                               "/models/brackets/sample_request.json"));
  EXPECT_EQ(result.exit_code, 0) << result.out;
  EXPECT_THAT(result.out, HasSubstr("\"model_name\": \"brackets\""));
  EXPECT_THAT(result.out, HasSubstr("\"model_version\": 1"));
  EXPECT_THAT(result.out, HasSubstr("\"results\""));
}

TEST_F(BiserveCliTest, InputDashIsStandardInputWithoutAWarning) {
  // Reported: "--input -" printed Abseil's "Did you really mean to set flag
  // 'input' to the value '-'?" (a check of std::string flags).
  const std::string input =
      BISERVE_SOURCE_DIR "/models/example/sample_input.json";
  auto dash = RunCommand(
      Cli(absl::StrCat("predict --model=example --input - < ", input)));
  ASSERT_EQ(dash.exit_code, 0) << dash.out;
  EXPECT_THAT(dash.out, Not(HasSubstr("Did you really mean")));
  auto file =
      RunCommand(Cli(absl::StrCat("predict --model=example --input ", input)));
  EXPECT_EQ(dash.out, file.out);
}

TEST_F(BiserveCliTest,
       PredictsFromBiserveEvalJsonOnStandardInputLikeBiserveEval) {
  const std::string input =
      BISERVE_SOURCE_DIR "/models/example/sample_input.json";
  auto served = RunCommand(
      Cli(absl::StrCat("predict --model=example --states < ", input)));
  ASSERT_EQ(served.exit_code, 0) << served.out;
  auto local = RunCommand(absl::StrCat(
      BISERVE_BIN_DIR "/biserve_eval --model=" BISERVE_SOURCE_DIR
                      "/models/example/1/model.pbtxt --states --input=",
      input));
  ASSERT_EQ(local.exit_code, 0) << local.out;
  // The same results block as biserve_eval prints.
  const std::string results = local.out.substr(local.out.find("\"results\""));
  EXPECT_THAT(served.out, HasSubstr(results.substr(0, 200)));
}

TEST_F(BiserveCliTest, MetadataListAndHealthPrintJson) {
  auto metadata = RunCommand(Cli("metadata --model=example"));
  EXPECT_EQ(metadata.exit_code, 0) << metadata.out;
  EXPECT_THAT(metadata.out, HasSubstr("\"name\": \"features\""));
  EXPECT_THAT(metadata.out, HasSubstr("\"-1\""));
  auto list = RunCommand(Cli("list"));
  EXPECT_EQ(list.exit_code, 0) << list.out;
  EXPECT_THAT(list.out, HasSubstr("STATE_AVAILABLE"));
  auto health = RunCommand(Cli("health --model=brackets"));
  EXPECT_EQ(health.exit_code, 0) << health.out;
  EXPECT_THAT(health.out, HasSubstr("SERVING"));
}

TEST_F(BiserveCliTest, ExitCodesFollowTheGrpcStatus) {
  auto missing = RunCommand(Cli("metadata --model=nope"));
  EXPECT_EQ(missing.exit_code, 5) << missing.out;  // NOT_FOUND
  EXPECT_THAT(missing.out, HasSubstr("NOT_FOUND: model 'nope'"));
  const std::string bad =
      WriteTestFile("bad.json", R"({"sequences": [[[1, 2]]]})");
  auto invalid =
      RunCommand(Cli(absl::StrCat("predict --model=example --input=", bad)));
  EXPECT_EQ(invalid.exit_code, 3) << invalid.out;  // INVALID_ARGUMENT
  EXPECT_THAT(invalid.out, HasSubstr("expected 8 numbers, got 2"));
  auto no_file =
      RunCommand(Cli("predict --model=example --input=/nonexistent.json"));
  EXPECT_EQ(no_file.exit_code, 5) << no_file.out;
  auto unknown = RunCommand(Cli("frobnicate"));
  EXPECT_EQ(unknown.exit_code, 3) << unknown.out;
  auto down = RunCommand(BISERVE_BIN_DIR
                         "/biserve --server=127.0.0.1:1 --timeout_s=5 list");
  EXPECT_EQ(down.exit_code, 14) << down.out;  // UNAVAILABLE
}

}  // namespace
}  // namespace biserve
