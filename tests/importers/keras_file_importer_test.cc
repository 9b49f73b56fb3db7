// The Keras file importer on the ten real files of ../shared/real-models/
// (beside the clone; skipped with a message when absent): each loadable
// one reproduces the float64 reference's outputs (expected/<case>.json)
// within its atol, each refused one is refused with a message saying why;
// and on hostile inputs (truncated or incomplete zips, HDF5 files that are
// no model, Git LFS pointers, random bytes, empty files), which are
// refused without a crash.
#include "importers/keras_file_importer.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/common/thread_pool.h"
#include "core/eval/evaluator.h"
#include "core/model/model.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "importers/tfjs_importer.h"
#include "proto/eval_json.h"
#include "proto/model_codec.h"

namespace biserve {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;
using ::testing::HasSubstr;

const std::string kRealModels =
    std::string(BISERVE_SOURCE_DIR) + "/../shared/real-models";
const std::string kFixtures =
    std::string(BISERVE_SOURCE_DIR) + "/tests/keras/fixtures";

std::string Slurp(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream buffer;
  buffer << file.rdbuf();
  return buffer.str();
}

std::vector<std::string> RealCases() {
  std::vector<std::string> cases;
  std::error_code error;
  for (const auto& entry :
       std::filesystem::directory_iterator(kRealModels + "/expected", error)) {
    if (entry.path().extension() == ".json") {
      cases.push_back(entry.path().stem().string());
    }
  }
  std::sort(cases.begin(), cases.end());
  return cases;
}

// Every number in `value`, depth first.
void Flatten(const Value& value, std::vector<double>& out) {
  if (value.has_list_value()) {
    for (const Value& v : value.list_value().values()) Flatten(v, out);
  } else if (value.kind_case() == Value::kNumberValue) {
    out.push_back(value.number_value());
  }
}

TEST(KerasRealModelsTest, FolderIsBesideTheClone) {
  if (!std::filesystem::exists(kRealModels)) {
    GTEST_SKIP() << kRealModels
                 << " is absent: the real Keras files are not tested (CI has "
                    "../shared beside the clone)";
  }
  EXPECT_EQ(RealCases().size(), 11u);
}

class KerasRealModelTest : public ::testing::TestWithParam<std::string> {};

// A refused file: the message starts with the path and says why.
void ExpectRefused(const std::string& path, const Struct& expected) {
  const std::string reason = expected.fields().at("reason").string_value();
  absl::StatusOr<v1::Model> model = absl::EndsWith(path, "model.json")
                                        ? ImportTfjsLayersModel(path, {})
                                        : ImportKerasFile(path, {});
  ASSERT_FALSE(model.ok()) << "imported, but should be refused: " << reason;
  if (!absl::EndsWith(path, "model.json")) {
    EXPECT_THAT(model.status().message(), HasSubstr(path));
  }
  if (absl::StrContains(reason, "no model config")) {
    EXPECT_THAT(model.status().message(),
                HasSubstr("no model config: save the whole model "
                          "(model.save)"));
  }
  if (absl::StrContains(reason, "Conv1D")) {
    EXPECT_THAT(model.status().message(), HasSubstr("Conv1D"));
  }
  std::cout << "refused as expected: " << model.status().message() << "\n";
}

TEST_P(KerasRealModelTest, ReproducesTheReference) {
  const std::string json_path =
      absl::StrCat(kRealModels, "/expected/", GetParam(), ".json");
  Struct expected;
  ASSERT_TRUE(
      google::protobuf::util::JsonStringToMessage(Slurp(json_path), &expected)
          .ok());
  const std::string path = absl::StrCat(
      kRealModels, "/", expected.fields().at("file").string_value());
  if (expected.fields().contains("expect")) {
    ExpectRefused(path, expected);
    return;
  }
  absl::StatusOr<v1::Model> proto = ImportKerasFile(path, {});
  ASSERT_TRUE(proto.ok()) << proto.status();
  absl::StatusOr<std::shared_ptr<const Model>> model =
      Model::Create(ModelSpecFromProto(*proto));
  ASSERT_TRUE(model.ok()) << model.status();

  std::string input;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(
                  expected.fields().at("input"), &input)
                  .ok());
  absl::StatusOr<std::vector<OwnedSequence>> sequences =
      ParseEvalInput(input, **model);
  ASSERT_TRUE(sequences.ok()) << sequences.status();
  std::vector<SequenceInput> batch;
  for (const OwnedSequence& s : *sequences) batch.push_back(s.View());
  auto pool = ThreadPool::Create({.num_threads = 2});
  ASSERT_TRUE(pool.ok());
  absl::StatusOr<std::vector<SequenceResult>> results =
      Evaluate(**model, batch, EvalOptions(), **pool);
  ASSERT_TRUE(results.ok()) << results.status();

  const double atol = expected.fields().at("atol").number_value();
  const auto& want = expected.fields()
                         .at("expected")
                         .struct_value()
                         .fields()
                         .at("results")
                         .list_value();
  ASSERT_EQ(want.values_size(), static_cast<int>(results->size()));
  double max_error = 0;
  for (int i = 0; i < want.values_size(); ++i) {
    std::vector<double> values;
    Flatten(want.values(i).struct_value().fields().at("output"), values);
    const Tensor& got = (*results)[i].output;
    ASSERT_EQ(got.values.size(), values.size()) << "sequence " << i;
    for (size_t j = 0; j < values.size(); ++j) {
      max_error = std::max(max_error, std::abs(got.values[j] - values[j]));
    }
  }
  std::cout << GetParam() << ": max error " << max_error << " (atol " << atol
            << ")\n";
  EXPECT_LE(max_error, atol);
}

INSTANTIATE_TEST_SUITE_P(Real, KerasRealModelTest,
                         ::testing::ValuesIn(RealCases()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) {
                               c = '_';
                             }
                           }
                           return name;
                         });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(KerasRealModelTest);

// The model's fixed time dimension (batch_input_shape [None, 12, 1]) does
// not stop other lengths, as in Keras.
TEST(KerasRealModelsTest, FixedTimeDimensionDoesNotStopOtherLengths) {
  const std::string path =
      kRealModels + "/tfk2.10.0_h5_named_keras/bilstm_model.keras";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " is absent";
  absl::StatusOr<v1::Model> proto = ImportKerasFile(path, {});
  ASSERT_TRUE(proto.ok()) << proto.status();
  auto model = Model::Create(ModelSpecFromProto(*proto));
  ASSERT_TRUE(model.ok()) << model.status();
  auto sequences = ParseEvalInput(
      R"({"sequences": [[[0.5]], [[0.1], [0.2], [0.3], [0.4], [0.5], [0.6],
          [0.7], [0.8], [0.9], [1.0], [1.1], [1.2], [1.3], [1.4], [1.5]]]})",
      **model);
  ASSERT_TRUE(sequences.ok()) << sequences.status();
  std::vector<SequenceInput> batch;
  for (const OwnedSequence& s : *sequences) batch.push_back(s.View());
  auto pool = ThreadPool::Create({.num_threads = 1});
  ASSERT_TRUE(pool.ok());
  EXPECT_TRUE(Evaluate(**model, batch, EvalOptions(), **pool).ok());
}

// The same Keras 3.10 model saved as .h5 and as .keras gives the same
// model.
TEST(KerasRealModelsTest, PairOfFormatsGivesTheSameModel) {
  const std::string folder = kRealModels + "/k3.10.0_pair_h5_and_keras";
  if (!std::filesystem::exists(folder)) GTEST_SKIP() << folder << " is absent";
  auto h5 = ImportKerasFile(folder + "/bi_lstm_model.h5", {.model_name = "m"});
  auto keras =
      ImportKerasFile(folder + "/bi_lstm_model.keras", {.model_name = "m"});
  ASSERT_TRUE(h5.ok()) << h5.status();
  ASSERT_TRUE(keras.ok()) << keras.status();
  ASSERT_EQ(h5->layers_size(), keras->layers_size());
  for (int i = 0; i < h5->layers_size(); ++i) {
    const v1::Layer& a = h5->layers(i);
    const v1::Layer& b = keras->layers(i);
    if (!a.has_bidirectional()) continue;
    EXPECT_EQ(a.bidirectional().layer().weights().kernel().values(0),
              b.bidirectional().layer().weights().kernel().values(0));
  }
}

// ---- Hostile inputs: refused, never a crash.

// A zip of stored members (what Keras writes), for the archive cases.
uint32_t Crc32(const std::string& data) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char c : data) {
    crc ^= c;
    for (int k = 0; k < 8; ++k)
      crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

void Put(std::string& out, uint32_t v, int bytes) {
  for (int i = 0; i < bytes; ++i)
    out += static_cast<char>((v >> (8 * i)) & 0xFF);
}

std::string StoredZip(
    const std::vector<std::pair<std::string, std::string>>& members) {
  std::string out, directory;
  for (const auto& [name, data] : members) {
    const uint32_t offset = out.size();
    const uint32_t crc = Crc32(data);
    Put(out, 0x04034b50, 4);
    Put(out, 20, 2);
    Put(out, 0, 2);
    Put(out, 0, 2);
    Put(out, 0, 4);
    Put(out, crc, 4);
    Put(out, data.size(), 4);
    Put(out, data.size(), 4);
    Put(out, name.size(), 2);
    Put(out, 0, 2);
    out += name + data;
    Put(directory, 0x02014b50, 4);
    Put(directory, 20, 2);
    Put(directory, 20, 2);
    Put(directory, 0, 2);
    Put(directory, 0, 2);
    Put(directory, 0, 4);
    Put(directory, crc, 4);
    Put(directory, data.size(), 4);
    Put(directory, data.size(), 4);
    Put(directory, name.size(), 2);
    Put(directory, 0, 2);
    Put(directory, 0, 2);
    Put(directory, 0, 2);
    Put(directory, 0, 2);
    Put(directory, 0, 4);
    Put(directory, offset, 4);
    directory += name;
  }
  const uint32_t directory_offset = out.size();
  out += directory;
  Put(out, 0x06054b50, 4);
  Put(out, 0, 2);
  Put(out, 0, 2);
  Put(out, members.size(), 2);
  Put(out, members.size(), 2);
  Put(out, directory.size(), 4);
  Put(out, directory_offset, 4);
  Put(out, 0, 2);
  return out;
}

std::string RefusalOf(absl::string_view bytes) {
  absl::StatusOr<v1::Model> model = ImportKerasBytes(bytes, {});
  EXPECT_FALSE(model.ok());
  if (!model.ok())
    EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  return model.ok() ? "" : std::string(model.status().message());
}

// A synthetic .keras fixture (tests/keras/fixtures/), when present.
std::string FixtureKeras() {
  for (const char* path :
       {"/keras_lstm_backward_layer_relu_concat_seq/keras3.10.0.keras",
        "/tfjs_lstm_concat_seq_td_softmax/keras3.10.0.keras"}) {
    std::string bytes = Slurp(kFixtures + path);
    if (!bytes.empty()) return bytes;
  }
  return "";
}

// The members of a zip of stored members, by name (enough for Keras').
std::map<std::string, std::string> StoredMembers(const std::string& zip) {
  auto u = [&](size_t at, int bytes) {
    uint32_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) {
      v = (v << 8) | static_cast<unsigned char>(zip[at + i]);
    }
    return v;
  };
  std::map<std::string, std::string> members;
  for (size_t at = 0; at + 30 <= zip.size() && u(at, 4) == 0x04034b50;) {
    const uint32_t size = u(at + 18, 4), name = u(at + 26, 2),
                   extra = u(at + 28, 2);
    members[zip.substr(at + 30, name)] =
        zip.substr(at + 30 + name + extra, size);
    at += 30 + name + extra + size;
  }
  return members;
}

// Keras >= 3.4's zipped=False: the three files in a folder.
TEST(KerasFolderTest, UnzippedFolderLoadsAsTheZip) {
  const std::string keras = FixtureKeras();
  if (keras.empty()) GTEST_SKIP() << "no fixture in " << kFixtures;
  const std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) / "unzipped_keras";
  std::filesystem::create_directories(dir);
  const std::map<std::string, std::string> members = StoredMembers(keras);
  ASSERT_EQ(members.size(), 3u);
  for (const auto& [name, bytes] : members) {
    std::ofstream(dir / name, std::ios::binary) << bytes;
  }
  auto folder = ImportKerasFile(dir.string(), {});
  auto zip = ImportKerasBytes(keras, {});
  ASSERT_TRUE(folder.ok()) << folder.status();
  ASSERT_TRUE(zip.ok()) << zip.status();
  EXPECT_EQ(folder->SerializeAsString(), zip->SerializeAsString());
  std::filesystem::remove(dir / "config.json");
  auto no_config = ImportKerasFile(dir.string(), {});
  EXPECT_THAT(no_config.status().message(), HasSubstr("no config.json"));
}

TEST(KerasHostileInputTest, EmptyFile) {
  EXPECT_THAT(RefusalOf(""), HasSubstr("empty file"));
}

TEST(KerasHostileInputTest, GitLfsPointer) {
  EXPECT_THAT(RefusalOf("version https://git-lfs.github.com/spec/v1\n"
                        "oid sha256:4d7a2146\nsize 1063410\n"),
              HasSubstr("Git LFS pointer, not the model (run git lfs pull)"));
}

TEST(KerasHostileInputTest, RandomBytes) {
  std::mt19937 random(7);
  std::string bytes(4096, '\0');
  for (char& c : bytes) c = static_cast<char>(random());
  EXPECT_THAT(RefusalOf(bytes), HasSubstr("neither an HDF5 file"));
  // Random bytes behind each signature.
  RefusalOf(absl::StrCat("\x89HDF\r\n\x1a\n", bytes));
  RefusalOf(absl::StrCat("PK\x03\x04", bytes));
}

TEST(KerasHostileInputTest, ZipWithoutConfig) {
  EXPECT_THAT(RefusalOf(StoredZip({{"metadata.json", "{}"}})),
              HasSubstr("no config.json"));
}

TEST(KerasHostileInputTest, NpzWeights) {
  EXPECT_THAT(
      RefusalOf(StoredZip({{"config.json", "{}"}, {"model.weights.npz", "x"}})),
      HasSubstr("model.weights.npz"));
}

TEST(KerasHostileInputTest, WeightsThatAreNotHdf5) {
  EXPECT_THAT(RefusalOf(StoredZip({{"metadata.json", "{}"},
                                   {"config.json",
                                    R"({"class_name": "Sequential",
                                        "config": {"layers": []}})"},
                                   {"model.weights.h5", "not hdf5"}})),
              HasSubstr("model.weights.h5"));
}

TEST(KerasHostileInputTest, TruncatedZip) {
  const std::string keras = FixtureKeras();
  if (keras.empty()) GTEST_SKIP() << "no fixture in " << kFixtures;
  ASSERT_TRUE(ImportKerasBytes(keras, {}).ok());
  for (size_t size :
       {size_t{10}, keras.size() / 3, keras.size() / 2, keras.size() - 30}) {
    RefusalOf(keras.substr(0, size));
  }
}

TEST(KerasHostileInputTest, Hdf5WithoutModelConfig) {
  // The weights file of a .keras: an HDF5 file without model_config.
  const std::string keras = FixtureKeras();
  if (keras.empty()) GTEST_SKIP() << "no fixture in " << kFixtures;
  const size_t at = keras.find("\x89HDF\r\n\x1a\n");
  ASSERT_NE(at, std::string::npos);
  const std::string h5 = keras.substr(at);
  EXPECT_THAT(RefusalOf(h5),
              HasSubstr("no model config: save the whole model (model.save)"));
  // And damaged: every byte of its first kilobyte flipped in turn.
  for (size_t i = 8; i < std::min<size_t>(h5.size(), 1024); i += 7) {
    std::string damaged = h5;
    damaged[i] = static_cast<char>(damaged[i] ^ 0x5A);
    ImportKerasBytes(damaged, {}).IgnoreError();
  }
}

TEST(KerasHostileInputTest, FileErrorsStartWithThePath) {
  absl::StatusOr<v1::Model> missing =
      ImportKerasFile("/nonexistent/model.keras", {});
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(),
              HasSubstr("/nonexistent/model.keras"));
}

}  // namespace
}  // namespace biserve
