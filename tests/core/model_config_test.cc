#include "core/model/model_config.h"

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/kernels/precision.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/model_config_codec.h"

namespace biserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

VersionPolicy Latest(int num_versions) {
  VersionPolicy policy;
  policy.kind = VersionPolicy::Kind::kLatest;
  policy.num_versions = num_versions;
  return policy;
}

VersionPolicy All() {
  VersionPolicy policy;
  policy.kind = VersionPolicy::Kind::kAll;
  return policy;
}

VersionPolicy Specific(std::vector<int64_t> versions) {
  VersionPolicy policy;
  policy.kind = VersionPolicy::Kind::kSpecific;
  policy.versions = std::move(versions);
  return policy;
}

TEST(VersionPolicyTest, DefaultIsLatestOne) {
  const VersionPolicy policy;
  EXPECT_EQ(policy.kind, VersionPolicy::Kind::kLatest);
  EXPECT_EQ(policy.num_versions, 1);
  EXPECT_EQ(policy.ToString(), "latest");
}

TEST(VersionPolicyTest, LatestSelectsTheNewestVersionWhateverTheOrderOnDisk) {
  const std::vector<int64_t> on_disk = {3, 10, 1, 2};
  EXPECT_THAT(Latest(1).Select(on_disk), ElementsAre(10));
}

TEST(VersionPolicyTest, LatestNSelectsTheNNewestAscending) {
  const std::vector<int64_t> on_disk = {3, 10, 1, 2};
  EXPECT_THAT(Latest(2).Select(on_disk), ElementsAre(3, 10));
  EXPECT_THAT(Latest(3).Select(on_disk), ElementsAre(2, 3, 10));
}

TEST(VersionPolicyTest, LatestNWithFewerVersionsOnDiskSelectsThemAll) {
  const std::vector<int64_t> on_disk = {2, 1};
  EXPECT_THAT(Latest(5).Select(on_disk), ElementsAre(1, 2));
}

TEST(VersionPolicyTest, LatestWithNonPositiveCountSelectsOne) {
  const std::vector<int64_t> on_disk = {1, 2, 3};
  EXPECT_THAT(Latest(0).Select(on_disk), ElementsAre(3));
  EXPECT_THAT(Latest(-4).Select(on_disk), ElementsAre(3));
}

TEST(VersionPolicyTest, AllSelectsEveryVersionAscending) {
  const std::vector<int64_t> on_disk = {5, 1, 3};
  EXPECT_THAT(All().Select(on_disk), ElementsAre(1, 3, 5));
}

TEST(VersionPolicyTest, SpecificSelectsOnlyListedVersionsPresentOnDisk) {
  const std::vector<int64_t> on_disk = {1, 2, 3, 4};
  EXPECT_THAT(Specific({3, 1, 7}).Select(on_disk), ElementsAre(1, 3));
}

TEST(VersionPolicyTest, SpecificWithNoListedVersionOnDiskSelectsNothing) {
  const std::vector<int64_t> on_disk = {1, 2};
  EXPECT_THAT(Specific({5}).Select(on_disk), IsEmpty());
}

TEST(VersionPolicyTest, DuplicateVersionsOnDiskAreSelectedOnce) {
  const std::vector<int64_t> on_disk = {2, 2, 1, 1};
  EXPECT_THAT(All().Select(on_disk), ElementsAre(1, 2));
  EXPECT_THAT(Latest(2).Select(on_disk), ElementsAre(1, 2));
  EXPECT_THAT(Specific({2}).Select(on_disk), ElementsAre(2));
}

TEST(VersionPolicyTest, EveryPolicySelectsNothingFromAnEmptyDisk) {
  for (const VersionPolicy& policy :
       {Latest(1), Latest(3), All(), Specific({1})}) {
    SCOPED_TRACE(policy.ToString());
    EXPECT_THAT(policy.Select({}), IsEmpty());
  }
}

TEST(VersionPolicyTest, ToStringNamesKindAndParameters) {
  EXPECT_EQ(Latest(1).ToString(), "latest");
  EXPECT_EQ(Latest(0).ToString(), "latest");
  EXPECT_EQ(Latest(2).ToString(), "latest:2");
  EXPECT_EQ(All().ToString(), "all");
  EXPECT_EQ(Specific({1, 3}).ToString(), "specific:1,3");
  EXPECT_EQ(Specific({7}).ToString(), "specific:7");
}

TEST(BatchingOptionsTest, DefaultsAreValid) {
  EXPECT_TRUE(BatchingOptions().Validate().ok());
}

TEST(BatchingOptionsTest, ZeroQueueDelayIsValid) {
  BatchingOptions options;
  options.max_queue_delay_us = 0;
  EXPECT_TRUE(options.Validate().ok());
}

TEST(BatchingOptionsTest, EachNonPositiveCountIsRejectedByName) {
  struct Case {
    const char* field;
    void (*set)(BatchingOptions&);
  };
  const Case cases[] = {
      {"max_batch_size", [](BatchingOptions& o) { o.max_batch_size = 0; }},
      {"max_batch_steps", [](BatchingOptions& o) { o.max_batch_steps = 0; }},
      {"max_queue_size", [](BatchingOptions& o) { o.max_queue_size = 0; }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.field);
    BatchingOptions options;
    c.set(options);
    absl::Status status = options.Validate();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(status.message()), HasSubstr(c.field));
    EXPECT_THAT(std::string(status.message()),
                HasSubstr("must be at least 1; was 0"));
  }
}

TEST(BatchingOptionsTest, NegativeValueIsReportedAsGiven) {
  BatchingOptions options;
  options.max_batch_steps = -5;
  EXPECT_THAT(std::string(options.Validate().message()),
              HasSubstr("max_batch_steps must be at least 1; was -5"));
}

TEST(BatchingOptionsTest, NegativeQueueDelayIsRejectedByName) {
  BatchingOptions options;
  options.max_queue_delay_us = -1;
  absl::Status status = options.Validate();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("max_queue_delay_us must be 0 or more; was -1"));
}

TEST(BatchingOverridesTest, NoOverridesKeepTheDefaults) {
  BatchingOptions defaults;
  defaults.max_batch_size = 3;
  defaults.max_batch_steps = 40;
  defaults.max_queue_delay_us = 500;
  defaults.max_queue_size = 7;
  const BatchingOptions applied = BatchingOverrides().ApplyTo(defaults);
  EXPECT_EQ(applied.max_batch_size, 3);
  EXPECT_EQ(applied.max_batch_steps, 40);
  EXPECT_EQ(applied.max_queue_delay_us, 500);
  EXPECT_EQ(applied.max_queue_size, 7);
}

TEST(BatchingOverridesTest, EachOverrideReplacesOnlyItsField) {
  BatchingOptions defaults;
  defaults.max_batch_size = 3;
  defaults.max_batch_steps = 40;
  defaults.max_queue_delay_us = 500;
  defaults.max_queue_size = 7;

  BatchingOverrides size;
  size.max_batch_size = 16;
  EXPECT_EQ(size.ApplyTo(defaults).max_batch_size, 16);
  EXPECT_EQ(size.ApplyTo(defaults).max_batch_steps, 40);

  BatchingOverrides steps;
  steps.max_batch_steps = 100;
  EXPECT_EQ(steps.ApplyTo(defaults).max_batch_steps, 100);
  EXPECT_EQ(steps.ApplyTo(defaults).max_batch_size, 3);

  BatchingOverrides delay;
  delay.max_queue_delay_us = 0;  // an explicit 0 overrides, too
  EXPECT_EQ(delay.ApplyTo(defaults).max_queue_delay_us, 0);
  EXPECT_EQ(delay.ApplyTo(defaults).max_queue_size, 7);

  BatchingOverrides queue;
  queue.max_queue_size = 9;
  EXPECT_EQ(queue.ApplyTo(defaults).max_queue_size, 9);
  EXPECT_EQ(queue.ApplyTo(defaults).max_queue_delay_us, 500);
}

TEST(ModelConfigTest, DefaultServesTheLatestVersionWithoutOverrides) {
  const ModelConfig config;
  EXPECT_EQ(config.version_policy.ToString(), "latest");
  EXPECT_FALSE(config.batching.max_batch_size.has_value());
  EXPECT_FALSE(config.batching.max_batch_steps.has_value());
  EXPECT_FALSE(config.batching.max_queue_delay_us.has_value());
  EXPECT_FALSE(config.batching.max_queue_size.has_value());
}

// config.pbtxt's precision, through ReadModelConfig (text) and
// ModelConfigFromProto (the message).
class ConfigPrecisionTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (const std::string& path : written_) std::remove(path.c_str());
  }

  // Writes `content` to a file named after the test and the process (CTest
  // runs tests in parallel processes) and reads it back as a config.
  absl::StatusOr<ModelConfig> Read(const std::string& content) {
    const std::string path = absl::StrCat(
        ::testing::TempDir(), "model_config_test_", getpid(), "_",
        ::testing::UnitTest::GetInstance()->current_test_info()->name(),
        "_config.pbtxt");
    std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
    written_.push_back(path);
    return ReadModelConfig(path);
  }

 private:
  std::vector<std::string> written_;
};

TEST_F(ConfigPrecisionTest, Bf16IsRead) {
  absl::StatusOr<ModelConfig> config = Read("precision: BF16\n");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->precision, Precision::kBf16);
}

TEST_F(ConfigPrecisionTest, Fp32IsReadAsAnExplicitChoice) {
  absl::StatusOr<ModelConfig> config =
      Read("version_policy { all {} }\nprecision: FP32\n");
  ASSERT_TRUE(config.ok()) << config.status();
  // Set, not absent: it overrides the server's --precision.
  EXPECT_EQ(config->precision, Precision::kFp32);
  EXPECT_EQ(config->version_policy.ToString(), "all");
}

TEST_F(ConfigPrecisionTest, AbsentLeavesItToTheServer) {
  for (const char* content : {"", "version_policy { all {} }\n",
                              "precision: PRECISION_UNSPECIFIED\n"}) {
    absl::StatusOr<ModelConfig> config = Read(content);
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_EQ(config->precision, std::nullopt) << content;
  }
}

TEST_F(ConfigPrecisionTest, UnknownNameIsATextParseErrorNamingIt) {
  // Enum names are case-sensitive in text format; ParsePrecision's "bf16"
  // is for --precision only.
  for (const char* name : {"FP16", "bf16"}) {
    absl::StatusOr<ModelConfig> config =
        Read(absl::StrCat("precision: ", name, "\n"));
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument)
        << name;
    const std::string message(config.status().message());
    EXPECT_THAT(message, HasSubstr("not a valid biserve.v1.ModelConfig"));
    EXPECT_THAT(message, HasSubstr(absl::StrCat("\"", name, "\"")));
    EXPECT_THAT(message, HasSubstr("\"precision\""));
  }
}

TEST(ConfigPrecisionFromProtoTest, EachValueMapsAndUnknownNumbersAreRejected) {
  v1::ModelConfig proto;
  EXPECT_EQ(ModelConfigFromProto(proto)->precision, std::nullopt);
  proto.set_precision(v1::BF16);
  EXPECT_EQ(ModelConfigFromProto(proto)->precision, Precision::kBf16);
  proto.set_precision(v1::FP32);
  EXPECT_EQ(ModelConfigFromProto(proto)->precision, Precision::kFp32);
  // proto3 enums are open: a number no name has (a newer client's value,
  // or "precision: 7" in text) reaches the codec, which rejects it.
  proto.set_precision(static_cast<v1::Precision>(7));
  absl::StatusOr<ModelConfig> config = ModelConfigFromProto(proto);
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(config.status().message()),
              HasSubstr("precision: unknown value 7; expected FP32 or BF16"));
}

TEST_F(ConfigPrecisionTest, UnknownNumberInTextIsRejectedWithThePath) {
  absl::StatusOr<ModelConfig> config = Read("precision: 7\n");
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(config.status().message()),
              HasSubstr("unknown value 7"));
}

}  // namespace
}  // namespace biserve
