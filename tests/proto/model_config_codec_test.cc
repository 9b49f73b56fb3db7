#include "proto/model_config_codec.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace biserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

class ReadModelConfigTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (const std::string& path : written_) std::remove(path.c_str());
  }

  // Writes `content` to a file named after the test and the process (CTest
  // runs tests in parallel processes) and returns its path.
  std::string WriteConfig(const std::string& content) {
    const std::string path = absl::StrCat(
        ::testing::TempDir(), "model_config_codec_test_", getpid(), "_",
        ::testing::UnitTest::GetInstance()->current_test_info()->name(),
        "_config.pbtxt");
    std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
    written_.push_back(path);
    return path;
  }

 private:
  std::vector<std::string> written_;
};

TEST_F(ReadModelConfigTest, EmptyFileGivesTheDefaults) {
  absl::StatusOr<ModelConfig> config = ReadModelConfig(WriteConfig(""));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->version_policy.kind, VersionPolicy::Kind::kLatest);
  EXPECT_EQ(config->version_policy.num_versions, 1);
  EXPECT_FALSE(config->batching.max_batch_size.has_value());
  EXPECT_FALSE(config->batching.max_batch_steps.has_value());
  EXPECT_FALSE(config->batching.max_queue_delay_us.has_value());
  EXPECT_FALSE(config->batching.max_queue_size.has_value());
}

TEST_F(ReadModelConfigTest, ReadsLatestWithCount) {
  absl::StatusOr<ModelConfig> config = ReadModelConfig(
      WriteConfig("version_policy { latest { num_versions: 3 } }"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->version_policy.kind, VersionPolicy::Kind::kLatest);
  EXPECT_EQ(config->version_policy.num_versions, 3);
  EXPECT_EQ(config->version_policy.ToString(), "latest:3");
}

TEST_F(ReadModelConfigTest, LatestWithoutCountServesOne) {
  absl::StatusOr<ModelConfig> config =
      ReadModelConfig(WriteConfig("version_policy { latest {} }"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->version_policy.kind, VersionPolicy::Kind::kLatest);
  EXPECT_EQ(config->version_policy.num_versions, 1);
}

TEST_F(ReadModelConfigTest, HugeLatestCountStaysLarge) {
  // num_versions is a uint32; beyond INT_MAX it must not wrap to a
  // negative count (which Select would treat as 1).
  absl::StatusOr<ModelConfig> config = ReadModelConfig(
      WriteConfig("version_policy { latest { num_versions: 4000000000 } }"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_GT(config->version_policy.num_versions, 1000);
  EXPECT_THAT(config->version_policy.Select({1, 2, 3}), ElementsAre(1, 2, 3));
}

TEST_F(ReadModelConfigTest, ReadsAll) {
  absl::StatusOr<ModelConfig> config =
      ReadModelConfig(WriteConfig("version_policy { all {} }"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->version_policy.kind, VersionPolicy::Kind::kAll);
  EXPECT_EQ(config->version_policy.ToString(), "all");
}

TEST_F(ReadModelConfigTest, ReadsSpecificVersions) {
  absl::StatusOr<ModelConfig> config = ReadModelConfig(
      WriteConfig("version_policy { specific { versions: [3, 1] } }"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->version_policy.kind, VersionPolicy::Kind::kSpecific);
  EXPECT_THAT(config->version_policy.versions, ElementsAre(3, 1));
  EXPECT_EQ(config->version_policy.ToString(), "specific:3,1");
}

TEST_F(ReadModelConfigTest, EmptySpecificListIsRejectedByField) {
  const std::string path = WriteConfig("version_policy { specific {} }");
  absl::StatusOr<ModelConfig> config = ReadModelConfig(path);
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(config.status().message()), StartsWith(path + ": "));
  EXPECT_THAT(std::string(config.status().message()),
              HasSubstr("version_policy.specific.versions is empty"));
}

TEST_F(ReadModelConfigTest, NonPositiveSpecificVersionIsRejectedWithItsValue) {
  absl::StatusOr<ModelConfig> config = ReadModelConfig(
      WriteConfig("version_policy { specific { versions: [2, 0] } }"));
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(config.status().message()),
              HasSubstr("version_policy.specific.versions"));
  EXPECT_THAT(std::string(config.status().message()), HasSubstr("got 0"));
}

TEST_F(ReadModelConfigTest, ReadsEveryBatchingOverride) {
  absl::StatusOr<ModelConfig> config = ReadModelConfig(WriteConfig(R"pb(
    batching {
      max_batch_size: 8
      max_batch_steps: 500
      max_queue_delay_us: 0
      max_queue_size: 12
    }
  )pb"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->batching.max_batch_size, 8);
  EXPECT_EQ(config->batching.max_batch_steps, 500);
  EXPECT_EQ(config->batching.max_queue_delay_us, 0);
  EXPECT_EQ(config->batching.max_queue_size, 12);
}

TEST_F(ReadModelConfigTest, AbsentBatchingFieldsStayUnset) {
  absl::StatusOr<ModelConfig> config =
      ReadModelConfig(WriteConfig("batching { max_queue_size: 5 }"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->batching.max_queue_size, 5);
  EXPECT_FALSE(config->batching.max_batch_size.has_value());
  EXPECT_FALSE(config->batching.max_batch_steps.has_value());
  EXPECT_FALSE(config->batching.max_queue_delay_us.has_value());
}

TEST_F(ReadModelConfigTest, OutOfRangeBatchingValueIsRejectedByField) {
  struct Case {
    const char* text;
    const char* expected;
  };
  const Case cases[] = {
      {"batching { max_batch_size: 0 }",
       "batching.max_batch_size must be at least 1; was 0"},
      {"batching { max_batch_steps: -3 }",
       "batching.max_batch_steps must be at least 1; was -3"},
      {"batching { max_queue_size: 0 }",
       "batching.max_queue_size must be at least 1; was 0"},
      {"batching { max_queue_delay_us: -1 }",
       "batching.max_queue_delay_us must be 0 or more; was -1"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    const std::string path = WriteConfig(c.text);
    absl::StatusOr<ModelConfig> config = ReadModelConfig(path);
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(config.status().message()),
                StartsWith(path + ": "));
    EXPECT_THAT(std::string(config.status().message()), HasSubstr(c.expected));
  }
}

TEST_F(ReadModelConfigTest, SyntaxErrorGivesPathLineAndColumn) {
  const std::string path =
      WriteConfig("version_policy { all {} }\nbatching { max_batch_size: }\n");
  absl::StatusOr<ModelConfig> config = ReadModelConfig(path);
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(config.status().message()), StartsWith(path + ": "));
  EXPECT_THAT(std::string(config.status().message()),
              HasSubstr("not a valid biserve.v1.ModelConfig"));
  EXPECT_THAT(std::string(config.status().message()),
              HasSubstr("line 2, column"));
}

TEST_F(ReadModelConfigTest, UnknownFieldIsRejectedWithItsName) {
  absl::StatusOr<ModelConfig> config =
      ReadModelConfig(WriteConfig("max_batch_size: 4\n"));
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(config.status().message()), HasSubstr("line 1"));
  EXPECT_THAT(std::string(config.status().message()),
              HasSubstr("max_batch_size"));
}

TEST_F(ReadModelConfigTest, MissingFileIsNotFoundNamingThePath) {
  const std::string path = ::testing::TempDir() +
                           "model_config_codec_test_no_such_folder/"
                           "config.pbtxt";
  absl::StatusOr<ModelConfig> config = ReadModelConfig(path);
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(config.status().message()), HasSubstr(path));
}

TEST(ModelConfigFromProtoTest, EmptyMessageGivesTheDefaults) {
  absl::StatusOr<ModelConfig> config = ModelConfigFromProto(v1::ModelConfig());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->version_policy.ToString(), "latest");
  EXPECT_FALSE(config->batching.max_batch_size.has_value());
}

TEST(ModelConfigFromProtoTest, ErrorsNameTheFieldWithoutAPath) {
  v1::ModelConfig proto;
  proto.mutable_batching()->set_max_batch_size(-2);
  absl::StatusOr<ModelConfig> config = ModelConfigFromProto(proto);
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(config.status().message()),
              StartsWith("batching.max_batch_size must be at least 1; was -2"));
}

}  // namespace
}  // namespace biserve
