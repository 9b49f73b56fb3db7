#include "importers/isolated_import.h"

#include <signal.h>

#include <filesystem>
#include <string>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "importers/keras_file_importer.h"
#include "tests/support/sanitized.h"

namespace biserve {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

const std::string kSource = BISERVE_SOURCE_DIR;
const std::string kFixture =
    kSource + "/tests/keras/fixtures/keras_lstm_backward_layer_relu_concat_seq";
// libhdf5 1.10.8's own failures, found by the keras_import fuzz target.
const std::string kData = kSource + "/tests/importers/data/";

// Under AddressSanitizer or ThreadSanitizer the helper's address space is not
// limited (their shadow memory needs terabytes): the fault tests need a
// plain build (tests/support/sanitized.h).

// A good file, with a fault injected into the helper (test_fault).
IsolatedImportOptions Faulty(const std::string& fault) {
  IsolatedImportOptions options;
  options.test_fault = fault;
  options.timeout = absl::Seconds(2);
  return options;
}

TEST(IsolatedImportTest, GoodFileImportsAsInProcess) {
  for (const std::string name : {"keras3.10.0.h5", "keras3.10.0.keras"}) {
    const std::string path = kFixture + "/" + name;
    KerasImportOptions options;
    options.model_name = "tagger";
    auto isolated = ImportKerasFileIsolated(path, options);
    auto in_process = ImportKerasFile(path, options);
    ASSERT_TRUE(isolated.ok()) << isolated.status();
    ASSERT_TRUE(in_process.ok()) << in_process.status();
    EXPECT_EQ(isolated->SerializeAsString(), in_process->SerializeAsString());
    EXPECT_EQ(isolated->name(), "tagger");
  }
}

TEST(IsolatedImportTest, ImporterErrorsComeBackUnchanged) {
  const std::string path = kSource + "/CMakeLists.txt";
  auto isolated = ImportKerasFileIsolated(path, {});
  auto in_process = ImportKerasFile(path, {});
  EXPECT_EQ(isolated.status(), in_process.status());
  EXPECT_FALSE(isolated.ok());
}

TEST(IsolatedImportTest, CrashIsInvalidArgumentNamingTheSignal) {
  if (Sanitized()) GTEST_SKIP() << "ASan handles crashes";
  const std::string path = kFixture + "/keras3.10.0.h5";
  auto model = ImportKerasFileIsolated(path, {}, Faulty("crash"));
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(model.status().message()), StartsWith(path));
  EXPECT_THAT(std::string(model.status().message()),
              HasSubstr("the HDF5 reader crashed on this file (signal 11"));
}

TEST(IsolatedImportTest, HangIsKilledAtTheTimeout) {
  const std::string path = kFixture + "/keras3.10.0.h5";
  const absl::Time start = absl::Now();
  auto model = ImportKerasFileIsolated(path, {}, Faulty("hang"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_EQ(model.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(model.status().message()),
              HasSubstr("reading the file took over 2s"));
}

TEST(IsolatedImportTest, HugeAllocationFailsInTheHelper) {
  if (Sanitized()) GTEST_SKIP() << "ASan handles crashes";
  const std::string path = kFixture + "/keras3.10.0.h5";
  auto model = ImportKerasFileIsolated(path, {}, Faulty("allocate"));
  EXPECT_EQ(model.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(model.status().message()), StartsWith(path));
  EXPECT_THAT(std::string(model.status().message()), HasSubstr("memory"));
}

TEST(IsolatedImportTest, MissingHelperIsFailedPrecondition) {
  IsolatedImportOptions options;
  options.helper_path = "/nonexistent/biserve_keras_import";
  auto model =
      ImportKerasFileIsolated(kFixture + "/keras3.10.0.h5", {}, options);
  EXPECT_EQ(model.status().code(), absl::StatusCode::kFailedPrecondition);
}

// The real reproducers: whatever libhdf5 does with them (crash, allocate,
// loop, or, in a build where the damage goes unnoticed, an error), the
// answer is an error naming the file, in bounded time.
TEST(IsolatedImportTest, RealLibhdf5ReproducersGiveAStatus) {
  for (const std::string name :
       {"hdf5_overflow.h5", "hdf5_huge_length.h5", "hdf5_endless.keras"}) {
    IsolatedImportOptions options;
    options.timeout = absl::Seconds(3);
    const absl::Time start = absl::Now();
    auto model = ImportKerasFileIsolated(kData + name, {}, options);
    EXPECT_LT(absl::Now() - start, absl::Seconds(15)) << name;
    EXPECT_FALSE(model.ok()) << name;
    EXPECT_THAT(std::string(model.status().message()), StartsWith(kData + name))
        << model.status();
  }
}

TEST(IsolatedImportTest, OutcomeRoundTrips) {
  v1::Model model;
  model.set_name("m");
  auto decoded = DecodeImportOutcome("f", EncodeImportOutcome(model));
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->name(), "m");
  EXPECT_EQ(DecodeImportOutcome(
                "f", EncodeImportOutcome(absl::NotFoundError("f: gone")))
                .status(),
            absl::NotFoundError("f: gone"));
  EXPECT_EQ(DecodeImportOutcome("f", "junk").status().code(),
            absl::StatusCode::kInternal);
}

}  // namespace
}  // namespace biserve
