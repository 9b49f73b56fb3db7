// biserve_loadtest against a real server: it runs each mode, counts errors
// by status code and writes the JSON report. (Figures are not checked:
// timings never go into tests.)
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/command.h"
#include "tests/server/http_get.h"
#include "tests/server/server_fixture.h"

namespace biserve {
namespace {

using ::biserve::testing::BundledModelsServerTest;
using ::biserve::testing::RunCommand;
using ::biserve::testing::TestPath;
using ::biserve::testing::WriteTestFile;
using ::testing::HasSubstr;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class BiserveLoadtestTest : public BundledModelsServerTest {
 protected:
  std::string Loadtest(const std::string& args) const {
    return CommandFor("biserve_loadtest", absl::StrCat("--warmup_s=0 ", args));
  }

  // Predict and PredictStream requests the server has answered, by its
  // biserve_requests_total (counted before each answer is sent).
  double PredictionsAnswered() const {
    const std::string metrics =
        ::biserve::testing::HttpGet(server_->metrics_port(), "/metrics");
    double sum = 0;
    for (absl::string_view line : absl::StrSplit(metrics, '\n')) {
      if (!absl::StartsWith(line, "biserve_requests_total{") ||
          !(absl::StrContains(line, "rpc=\"Predict\"") ||
            absl::StrContains(line, "rpc=\"PredictStream\""))) {
        continue;
      }
      double value = 0;
      EXPECT_TRUE(absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &value))
          << line;
      sum += value;
    }
    return sum;
  }
};

TEST_F(BiserveLoadtestTest, RequestsSendsExactlyThatMany) {
  // Reported: --requests 200 --concurrency 4 sent 203 (each worker finished
  // one more). Counted where they arrive, in every mode.
  ASSERT_GT(server_->metrics_port(), 0);
  struct Run {
    const char* mode;
    int requests;
  };
  double answered = 0;
  for (const Run& run :
       {Run{"--concurrency=4", 50}, Run{"--concurrency=3 --stream", 31},
        Run{"--rate=2000", 40},
        Run{"--rate=2000 --stream --concurrency=2", 23}}) {
    auto result = RunCommand(Loadtest(
        absl::StrCat("--model=example --seq_len=2 --requests=", run.requests,
                     " ", run.mode)));
    ASSERT_EQ(result.exit_code, 0) << run.mode << "\n" << result.out;
    answered += run.requests;
    EXPECT_EQ(PredictionsAnswered(), answered) << run.mode << "\n"
                                               << result.out;
  }
}

TEST_F(BiserveLoadtestTest, ClosedLoopWritesTheReportWithEveryKey) {
  const std::string out = TestPath("report.json");
  auto run = RunCommand(Loadtest(absl::StrCat(
      "--model=example --concurrency=4 --requests=200 --seq_len=1:30 --batch=2 "
      "--out=",
      out)));
  ASSERT_EQ(run.exit_code, 0) << run.out;
  const std::string json = ReadAll(out);
  for (const char* key :
       {"\"throughput_rps\"", "\"steps_per_s\"", "\"latency_ms\"", "\"p50\"",
        "\"p90\"", "\"p99\"", "\"p999\"", "\"max\"", "\"errors\": {}"}) {
    EXPECT_THAT(json, HasSubstr(key)) << json;
  }
  EXPECT_THAT(json, HasSubstr("\"requests\": 200,"));
}

TEST_F(BiserveLoadtestTest, StreamsOpenLoopAndLengthFiles) {
  const std::string lengths = WriteTestFile("lengths.txt", "3 7\n12, 1\n");
  auto stream = RunCommand(
      Loadtest(absl::StrCat("--model=brackets --stream --concurrency=2 "
                            "--requests=100 --seq_len_file=",
                            lengths)));
  EXPECT_EQ(stream.exit_code, 0) << stream.out;
  EXPECT_THAT(stream.out, HasSubstr("stream"));
  auto open = RunCommand(
      Loadtest("--model=example --rate=200 --duration_s=1 --seq_len=20"));
  EXPECT_EQ(open.exit_code, 0) << open.out;
  auto open_stream = RunCommand(Loadtest(
      "--model=example --rate=200 --duration_s=1 --stream --concurrency=2"));
  EXPECT_EQ(open_stream.exit_code, 0) << open_stream.out;
}

TEST_F(BiserveLoadtestTest, SweepPrintsOneLinePerConcurrency) {
  const std::string out = TestPath("sweep.json");
  auto run = RunCommand(Loadtest(absl::StrCat(
      "--model=example --sweep=1,3 --duration_s=0.5 --out=", out)));
  ASSERT_EQ(run.exit_code, 0) << run.out;
  EXPECT_THAT(run.out, ::testing::ContainsRegex("\n +1 +0 "));
  EXPECT_THAT(run.out, ::testing::ContainsRegex("\n +3 +0 "));
  EXPECT_THAT(ReadAll(out), HasSubstr("\"sweep\""));
}

TEST_F(BiserveLoadtestTest, ErrorsAreCountedByStatusCode) {
  const std::string out = TestPath("errors.json");
  // Sequences longer than the server accepts: every request INVALID_ARGUMENT.
  auto run = RunCommand(Loadtest(absl::StrCat(
      "--model=example --requests=20 --seq_len=100001 --out=", out)));
  EXPECT_NE(run.exit_code, 0) << run.out;
  EXPECT_THAT(ReadAll(out), HasSubstr("\"INVALID_ARGUMENT\": 2"));
  auto bad_flag = RunCommand(Loadtest("--model=example --seq_len=5:2"));
  EXPECT_EQ(bad_flag.exit_code, 3) << bad_flag.out;
  EXPECT_THAT(bad_flag.out, HasSubstr("--seq_len"));
}

}  // namespace
}  // namespace biserve
