#include "importers/model_file.h"

#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/model_codec.h"

namespace biserve {
namespace {

using ::testing::ElementsAre;
using ::testing::StartsWith;

const std::string kSource = BISERVE_SOURCE_DIR;

// `bytes` written at <test tmp>/<relative>; returns the path.
std::string WriteFile(const std::string& relative, const std::string& bytes) {
  const std::filesystem::path path =
      std::filesystem::path(::testing::TempDir()) / "model_file_test" /
      ::testing::UnitTest::GetInstance()->current_test_info()->name() /
      relative;
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
  return path.string();
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(ModelFileTest, RepositoryFileNamesListEveryFormatTheLoaderReads) {
  EXPECT_THAT(RepositoryModelFileNames(),
              ElementsAre("model.pb", "model.pbtxt", "model.onnx",
                          "model.keras", "model.h5"));
  EXPECT_EQ(ModelFileFormatOf("m/1/model.keras"), ModelFileFormat::kKeras);
  EXPECT_EQ(ModelFileFormatOf("m/1/model.h5"), ModelFileFormat::kKeras);
  EXPECT_EQ(ModelFileFormatOf("m/1/model.onnx"), ModelFileFormat::kOnnx);
  EXPECT_EQ(ModelFileFormatOf("Model.ONNX"), ModelFileFormat::kOnnx);
  EXPECT_EQ(ModelFileFormatOf("m/1/model.pb"), ModelFileFormat::kBiserve);
  EXPECT_EQ(ModelFileFormatOf("m/1/model.pbtxt"), ModelFileFormat::kBiserve);
  EXPECT_EQ(ModelFileFormatOf("model.json"), ModelFileFormat::kBiserve);
}

TEST(ModelFileTest, ModelNameComesFromARepositoryPath) {
  EXPECT_EQ(ModelNameFromPath("/srv/models/tagger/3/model.onnx"), "tagger");
  EXPECT_EQ(ModelNameFromPath("tagger/12/model.pb"), "tagger");
  EXPECT_EQ(ModelNameFromPath("/tmp/model.onnx"), "");
  EXPECT_EQ(ModelNameFromPath("model.onnx"), "");
  EXPECT_EQ(ModelNameFromPath("tagger/v3/model.onnx"), "");
}

TEST(ModelFileTest, OwnFormatLoadsAsLoadModelFileDoes) {
  const std::string path = kSource + "/models/example/1/model.pbtxt";
  auto any = LoadAnyModelFile(path);
  auto own = LoadModelFile(path);
  ASSERT_TRUE(any.ok()) << any.status();
  ASSERT_TRUE(own.ok()) << own.status();
  EXPECT_EQ((*any)->name(), (*own)->name());
  EXPECT_EQ((*any)->output_size(), (*own)->output_size());
}

TEST(ModelFileTest, MissingOnnxFileIsNotFoundNamingIt) {
  const std::string path = ::testing::TempDir() + "/no/such/model.onnx";
  auto model = LoadAnyModelFile(path);
  EXPECT_EQ(model.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(model.status().message()), StartsWith(path));
}

TEST(ModelFileTest, CorruptOnnxFileIsInvalidArgumentNamingIt) {
  const std::string path =
      WriteFile("m/1/model.onnx", "\x08\xff\xff not a ModelProto");
  auto model = LoadAnyModelFile(path);
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(model.status().message()), StartsWith(path));
}

TEST(ModelFileTest, OnnxFileInARepositoryIsNamedAfterItsFolder) {
  const std::string fixture = kSource + "/tests/onnx/fixtures/lstm_basic.onnx";
  if (!std::filesystem::exists(fixture)) GTEST_SKIP() << "no " << fixture;
  const std::string path =
      WriteFile("models/tagger/3/model.onnx", ReadFile(fixture));
  auto model = LoadAnyModelFile(path);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->name(), "tagger");
  auto proto = ReadAnyModelFile(path);
  ASSERT_TRUE(proto.ok()) << proto.status();
  EXPECT_EQ(proto->name(), "tagger");
}

// Keras files are told by their content: an HDF5 file named model.keras, a
// zip named anything. A Git LFS pointer named model.h5 says what it is.
TEST(ModelFileTest, KerasFilesAreToldByTheirContent) {
  const std::string fixture =
      kSource + "/tests/keras/fixtures/tfjs_simple_rnn_relu_ave_seq";
  if (!std::filesystem::exists(fixture)) GTEST_SKIP() << "no " << fixture;
  const std::string h5 = WriteFile("models/tagger/3/model.keras",
                                   ReadFile(fixture + "/keras3.10.0.h5"));
  EXPECT_EQ(ModelFileFormatOf(h5), ModelFileFormat::kKeras);
  auto model = LoadAnyModelFile(h5);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->name(), "tagger");
  const std::string zip =
      WriteFile("zip.bin", ReadFile(fixture + "/keras3.0.5.keras"));
  EXPECT_EQ(ModelFileFormatOf(zip), ModelFileFormat::kKeras);
  EXPECT_TRUE(LoadAnyModelFile(zip).ok());

  const std::string lfs =
      WriteFile("m/1/model.h5", "version https://git-lfs.github.com/spec/v1\n");
  auto pointer = LoadAnyModelFile(lfs);
  EXPECT_EQ(pointer.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(pointer.status().message()), StartsWith(lfs));
  EXPECT_THAT(std::string(pointer.status().message()),
              ::testing::HasSubstr("Git LFS pointer"));
}

}  // namespace
}  // namespace biserve
