// The Keras file importer on the synthetic Keras files of
// tests/keras/fixtures/ (written by generate.py): the TF.js golden models of
// tests/golden/tfjs_models/ saved again in the exact layouts Keras writes
// (legacy .h5 from Keras 2.1/2.2, tf.keras 2.x and Keras 3; .keras zips from
// tf.keras 2.13/2.15 and Keras 3.0/3.10), with the same weights bit for bit.
//
// Each file must import and reproduce its case's expected outputs (the
// GoldenCase its case.json names), and every file of a case must give
// exactly the same outputs as the others and as ImportTfjsLayersModel of the
// TF.js model (except where TF.js' masked-step outputs differ from Keras',
// case.json's same_outputs_as_tfjs).
#include <zip.h>

#include <cctype>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/common/thread_pool.h"
#include "core/eval/evaluator.h"
#include "core/model/model.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "importers/json_fields.h"
#include "importers/keras_file_importer.h"
#include "importers/tfjs_importer.h"
#include "proto/model_codec.h"
#include "proto/read_file.h"
#include "tests/golden/golden_check.h"

namespace biserve {
namespace {

const std::string kSourceDir = BISERVE_SOURCE_DIR;
const std::string kFixtureDir = kSourceDir + "/tests/keras/fixtures";

// One case folder's case.json.
struct KerasCase {
  std::string name;
  std::string expected;    // a GoldenCase, relative to the source tree
  std::string tfjs_model;  // the model.json it was written from
  bool same_outputs_as_tfjs = true;
  std::vector<std::string> needs;  // layers the schema may still lack
  std::vector<std::string> files;
};

KerasCase ReadCase(const std::string& name) {
  KerasCase keras_case;
  keras_case.name = name;
  absl::StatusOr<std::string> json =
      ReadFile(kFixtureDir + "/" + name + "/case.json", "the case");
  EXPECT_TRUE(json.ok()) << json.status();
  if (!json.ok()) return keras_case;
  google::protobuf::Struct root;
  auto status = google::protobuf::util::JsonStringToMessage(*json, &root);
  EXPECT_TRUE(status.ok()) << name << ": " << status.ToString();
  keras_case.expected =
      importers::GetString(root, "expected").value_or("(missing)");
  keras_case.tfjs_model = importers::GetString(root, "tfjs_model").value_or("");
  keras_case.same_outputs_as_tfjs =
      importers::GetBool(root, "same_outputs_as_tfjs").value_or(true);
  if (const auto* needs = importers::GetList(root, "needs")) {
    for (const auto& need : needs->values()) {
      keras_case.needs.push_back(need.string_value());
    }
  }
  if (const auto* files = importers::GetList(root, "files")) {
    for (const auto& file : files->values()) {
      if (!file.has_struct_value()) continue;
      keras_case.files.push_back(
          importers::GetString(file.struct_value(), "file").value_or(""));
    }
  }
  return keras_case;
}

std::vector<std::string> CaseNames() {
  return testing::ListCases(kFixtureDir, /*directories=*/true);
}

// "case/file" for every file of every case.
std::vector<std::string> CaseFiles() {
  std::vector<std::string> names;
  for (const std::string& name : CaseNames()) {
    for (const std::string& file : ReadCase(name).files) {
      names.push_back(name + "/" + file);
    }
  }
  return names;
}

// The Keras classes each `needs` entry of case.json stands for: layers the
// model schema gains while this test is written. A case that needs them is
// skipped while the importer refuses them by name.
const std::vector<std::string>& ClassesNeeded(const std::string& need) {
  static const std::vector<std::string> kDropout = {
      "Dropout", "SpatialDropout1D", "GaussianNoise"};
  static const std::vector<std::string> kNone;
  return need == "dropout" ? kDropout : kNone;
}

// True when `status` is the importer refusing a layer that `keras_case`
// needs (and the schema may not have yet).
bool RefusesANeededLayer(const KerasCase& keras_case,
                         const absl::Status& status) {
  for (const std::string& need : keras_case.needs) {
    for (const std::string& class_name : ClassesNeeded(need)) {
      if (absl::StrContains(status.message(), class_name)) return true;
    }
  }
  return false;
}

TEST(KerasFixturesTest, CasesArePresent) {
  EXPECT_GE(CaseNames().size(), 15u) << "in " << kFixtureDir;
  EXPECT_GE(CaseFiles().size(), 40u) << "in " << kFixtureDir;
}

class KerasFileTest : public ::testing::TestWithParam<std::string> {};

// One file: imported, it reproduces its case's expected outputs.
TEST_P(KerasFileTest, ImportsAndReproducesTheGoldenOutputs) {
  const std::string case_name = GetParam().substr(0, GetParam().find('/'));
  const KerasCase keras_case = ReadCase(case_name);
  const std::string path = kFixtureDir + "/" + GetParam();
  absl::StatusOr<v1::Model> model = ImportKerasFile(path, {});
  if (!model.ok() && RefusesANeededLayer(keras_case, model.status())) {
    GTEST_SKIP() << "needs what the schema lacks yet: " << model.status();
  }
  ASSERT_TRUE(model.ok()) << model.status();
  auto loaded = Model::Create(ModelSpecFromProto(*model));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  test::GoldenCase golden =
      testing::ReadGoldenCase(kSourceDir + "/" + keras_case.expected);
  testing::ExpectMatchesGoldenCase(**loaded, golden);
}

INSTANTIATE_TEST_SUITE_P(Files, KerasFileTest, ::testing::ValuesIn(CaseFiles()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) {
                               c = '_';
                             }
                           }
                           return name;
                         });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(KerasFileTest);

// The golden case's sequences through `model`, as one batch.
std::vector<SequenceResult> EvaluateGolden(const Model& model,
                                           const test::GoldenCase& golden) {
  const std::vector<SequenceInput> batch = testing::GoldenBatch(golden);
  EvalOptions options;
  options.directions =
      golden.expected_size() > 0 && golden.expected(0).has_forward();
  options.states = true;
  auto pool = ThreadPool::Create({.num_threads = 1, .min_parallel_flops = 0});
  EXPECT_TRUE(pool.ok()) << pool.status();
  if (!pool.ok()) return {};
  auto results = Evaluate(model, batch, options, **pool);
  EXPECT_TRUE(results.ok()) << results.status();
  if (!results.ok()) return {};
  return *std::move(results);
}

// Bit for bit: same weights, same model, same evaluator.
::testing::AssertionResult SameTensor(const Tensor& actual,
                                      const Tensor& expected) {
  if (actual.shape != expected.shape) {
    return ::testing::AssertionFailure()
           << "shape " << ShapeString(actual.shape) << ", expected "
           << ShapeString(expected.shape);
  }
  for (size_t i = 0; i < actual.values.size(); ++i) {
    if (std::memcmp(&actual.values[i], &expected.values[i], sizeof(float)) !=
        0) {
      return ::testing::AssertionFailure()
             << "value " << i << ": " << actual.values[i] << ", expected "
             << expected.values[i];
    }
  }
  return ::testing::AssertionSuccess();
}

void ExpectSameResults(const std::vector<SequenceResult>& actual,
                       const std::vector<SequenceResult>& expected) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    SCOPED_TRACE(::testing::Message() << "sequence " << i);
    EXPECT_TRUE(SameTensor(actual[i].output, expected[i].output)) << "output";
    EXPECT_TRUE(SameTensor(actual[i].forward, expected[i].forward))
        << "forward";
    EXPECT_TRUE(SameTensor(actual[i].backward, expected[i].backward))
        << "backward";
    ASSERT_EQ(actual[i].states.size(), expected[i].states.size());
    for (size_t layer = 0; layer < actual[i].states.size(); ++layer) {
      ASSERT_EQ(actual[i].states[layer].size(),
                expected[i].states[layer].size());
      for (size_t s = 0; s < actual[i].states[layer].size(); ++s) {
        EXPECT_TRUE(SameTensor(actual[i].states[layer][s],
                               expected[i].states[layer][s]))
            << "layer " << layer << " state " << s;
      }
    }
  }
}

class KerasCaseTest : public ::testing::TestWithParam<std::string> {};

// All files of one case, and the TF.js model they were written from, give
// the same outputs, bit for bit.
TEST_P(KerasCaseTest, EveryFormatGivesTheSameOutputs) {
  const KerasCase keras_case = ReadCase(GetParam());
  test::GoldenCase golden =
      testing::ReadGoldenCase(kSourceDir + "/" + keras_case.expected);
  ASSERT_GE(keras_case.files.size(), 2u);
  std::string reference_file;
  std::vector<SequenceResult> reference;
  for (const std::string& file : keras_case.files) {
    SCOPED_TRACE(file);
    absl::StatusOr<v1::Model> model =
        ImportKerasFile(kFixtureDir + "/" + GetParam() + "/" + file, {});
    if (!model.ok() && RefusesANeededLayer(keras_case, model.status())) {
      GTEST_SKIP() << "needs what the schema lacks yet: " << model.status();
    }
    ASSERT_TRUE(model.ok()) << model.status();
    auto loaded = Model::Create(ModelSpecFromProto(*model));
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    std::vector<SequenceResult> results = EvaluateGolden(**loaded, golden);
    if (reference_file.empty()) {
      reference_file = file;
      reference = std::move(results);
      continue;
    }
    SCOPED_TRACE("against " + reference_file);
    ExpectSameResults(results, reference);
  }
  if (keras_case.tfjs_model.empty() || !keras_case.same_outputs_as_tfjs) {
    return;
  }
  SCOPED_TRACE(keras_case.tfjs_model + " against " + reference_file);
  absl::StatusOr<v1::Model> tfjs =
      ImportTfjsLayersModel(kSourceDir + "/" + keras_case.tfjs_model, {});
  ASSERT_TRUE(tfjs.ok()) << tfjs.status();
  auto loaded = Model::Create(ModelSpecFromProto(*tfjs));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ExpectSameResults(EvaluateGolden(**loaded, golden), reference);
}

// A copy of the .keras file at `from` with every `open` in its config.json
// replaced by `fixed`, at `to`; empty when that fails.
std::string RewriteKerasConfig(const std::string& from, const std::string& to,
                               const std::string& open,
                               const std::string& fixed) {
  std::filesystem::copy_file(from, to,
                             std::filesystem::copy_options::overwrite_existing);
  int error = 0;
  zip_t* archive = zip_open(to.c_str(), 0, &error);
  if (archive == nullptr) return "";
  zip_stat_t stat;
  zip_file_t* file = zip_stat(archive, "config.json", 0, &stat) == 0
                         ? zip_fopen(archive, "config.json", 0)
                         : nullptr;
  if (file == nullptr) {
    zip_discard(archive);
    return "";
  }
  std::string config(stat.size, '\0');
  const zip_int64_t read = zip_fread(file, config.data(), config.size());
  zip_fclose(file);
  if (read != static_cast<zip_int64_t>(config.size())) {
    zip_discard(archive);
    return "";
  }
  for (size_t at = config.find(open); at != std::string::npos;
       at = config.find(open, at + fixed.size())) {
    config.replace(at, open.size(), fixed);
  }
  // libzip keeps the buffer until zip_close.
  zip_source_t* source =
      zip_source_buffer(archive, config.data(), config.size(), 0);
  if (source == nullptr ||
      zip_file_add(archive, "config.json", source, ZIP_FL_OVERWRITE) < 0) {
    if (source != nullptr) zip_source_free(source);
    zip_discard(archive);
    return "";
  }
  return zip_close(archive) == 0 ? to : "";
}

// A Keras 3 .keras file whose input declares a fixed time dimension
// (Input(batch_shape=(None, 9, 5))): imported with declared_time_steps 9,
// and the golden sequences, of other lengths, evaluate exactly as with the
// open time dimension, as Keras allows for RNNs.
TEST(KerasFixedTimeStepsTest, DeclaredTimeStepsIsKeptAndAnyLengthServes) {
  const std::string name = "keras_gru_reset_after_concat_seq_td_softmax";
  const std::string original = kFixtureDir + "/" + name + "/keras3.10.0.keras";
  const std::string fixed = RewriteKerasConfig(
      original, ::testing::TempDir() + "/fixed_time_steps.keras",
      "[null, null, 5]", "[null, 9, 5]");
  ASSERT_FALSE(fixed.empty());
  absl::StatusOr<v1::Model> open = ImportKerasFile(original, {});
  ASSERT_TRUE(open.ok()) << open.status();
  EXPECT_EQ(open->declared_time_steps(), 0);
  absl::StatusOr<v1::Model> model = ImportKerasFile(fixed, {});
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->declared_time_steps(), 9);

  const KerasCase keras_case = ReadCase(name);
  test::GoldenCase golden =
      testing::ReadGoldenCase(kSourceDir + "/" + keras_case.expected);
  bool other_length = false;
  for (const test::GoldenSequence& seq : golden.sequences()) {
    other_length |= seq.length() != 9;
  }
  EXPECT_TRUE(other_length);
  auto loaded_open = Model::Create(ModelSpecFromProto(*open));
  ASSERT_TRUE(loaded_open.ok()) << loaded_open.status();
  auto loaded = Model::Create(ModelSpecFromProto(*model));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ExpectSameResults(EvaluateGolden(**loaded, golden),
                    EvaluateGolden(**loaded_open, golden));
}

INSTANTIATE_TEST_SUITE_P(Cases, KerasCaseTest, ::testing::ValuesIn(CaseNames()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(KerasCaseTest);

}  // namespace
}  // namespace biserve
