// The ONNX importer on files PyTorch exported (tests/onnx/fixtures/, written
// by generate.py): each loadable fixture is imported, its padded batch sent
// as an Open Inference ModelInfer with the graph's own tensor names, and the
// answer compared with what PyTorch (and ONNX Runtime) computed, for the
// batch and for each sequence alone. Each refused fixture must fail with a
// message holding the fixture's expected substrings.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/common/thread_pool.h"
#include "core/eval/evaluator.h"
#include "core/model/model.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "importers/onnx_importer.h"
#include "onnx_case.pb.h"
#include "proto/inference_codec.h"
#include "proto/model_codec.h"
#include "proto/open_inference_codec.h"
#include "proto/read_file.h"
#include "tests/golden/golden_check.h"

namespace biserve {
namespace {

const std::string kFixtureDir =
    std::string(BISERVE_SOURCE_DIR) + "/tests/onnx/fixtures";

std::vector<std::string> CaseNames() {
  std::vector<std::string> names;
  for (const std::string& name :
       testing::ListCases(kFixtureDir, /*directories=*/false)) {
    names.push_back(name);
  }
  return names;
}

test::OnnxCase ReadCase(const std::string& name) {
  test::OnnxCase onnx_case;
  absl::StatusOr<std::string> json =
      ReadFile(kFixtureDir + "/" + name + ".json", "the fixture");
  EXPECT_TRUE(json.ok()) << json.status();
  if (!json.ok()) return onnx_case;
  auto status = google::protobuf::util::JsonStringToMessage(*json, &onnx_case);
  EXPECT_TRUE(status.ok()) << name << ": " << status.ToString();
  return onnx_case;
}

inference::ModelInferRequest InferRequest(const test::OnnxRun& run) {
  inference::ModelInferRequest request;
  request.set_model_name("m");
  for (const test::NamedTensor& tensor : run.inputs()) {
    auto* input = request.add_inputs();
    input->set_name(tensor.name());
    input->set_datatype(tensor.datatype());
    for (int64_t d : tensor.shape()) input->add_shape(d);
    if (tensor.datatype() == "FP32") {
      input->mutable_contents()->mutable_fp32_contents()->CopyFrom(
          tensor.float_data());
    } else {
      input->mutable_contents()->mutable_int64_contents()->CopyFrom(
          tensor.int64_data());
    }
  }
  return request;
}

// Runs `run` through the Open Inference codec and the evaluator, as the
// server does, and returns the reply.
absl::StatusOr<inference::ModelInferResponse> Infer(const Model& model,
                                                    const test::OnnxRun& run) {
  RequestLimits limits;
  absl::StatusOr<OpenInferCall> call =
      PredictRequestFromInfer(InferRequest(run), model, limits);
  if (!call.ok()) return call.status();
  absl::StatusOr<std::vector<SequenceInput>> sequences =
      SequencesFromRequest(call->request, model, limits);
  if (!sequences.ok()) return sequences.status();
  static ThreadPool* pool = ThreadPool::Create({.num_threads = 2})->release();
  absl::StatusOr<std::vector<SequenceResult>> results = Evaluate(
      model, *sequences, EvalOptionsFromRequest(call->request, limits), *pool);
  if (!results.ok()) return results.status();
  v1::PredictResponse predict;
  ResultsToResponse(model, *std::move(results), &predict);
  inference::ModelInferResponse response;
  absl::Status status =
      InferResponseFromPredict(predict, *call, model, &response);
  if (!status.ok()) return status;
  return response;
}

std::vector<float> Values(const inference::ModelInferResponse& response,
                          int index) {
  const auto& output = response.outputs(index);
  if (output.contents().fp32_contents_size() > 0) {
    return {output.contents().fp32_contents().begin(),
            output.contents().fp32_contents().end()};
  }
  std::vector<float> values;
  if (index < response.raw_output_contents_size()) {
    const std::string& raw = response.raw_output_contents(index);
    values.resize(raw.size() / sizeof(float));
    std::memcpy(values.data(), raw.data(), values.size() * sizeof(float));
  }
  return values;
}

void ExpectOutputs(const inference::ModelInferResponse& response,
                   const test::OnnxRun& run, double tolerance,
                   const std::string& what) {
  for (const test::NamedTensor& expected : run.outputs()) {
    SCOPED_TRACE(absl::StrCat(what, " output '", expected.name(), "'"));
    int index = -1;
    for (int i = 0; i < response.outputs_size(); ++i) {
      if (response.outputs(i).name() == expected.name()) index = i;
    }
    ASSERT_GE(index, 0) << "not in the reply";
    EXPECT_EQ(
        std::vector<int64_t>(response.outputs(index).shape().begin(),
                             response.outputs(index).shape().end()),
        std::vector<int64_t>(expected.shape().begin(), expected.shape().end()));
    std::vector<float> actual = Values(response, index);
    ASSERT_EQ(actual.size(), static_cast<size_t>(expected.float_data_size()));
    double worst = 0;
    size_t worst_at = 0;
    for (size_t i = 0; i < actual.size(); ++i) {
      const double diff = std::abs(double{actual[i]} - expected.float_data(i));
      if (!(diff <= worst)) {
        worst = diff;
        worst_at = i;
      }
    }
    EXPECT_LE(worst, tolerance)
        << "at flat index " << worst_at << ": " << actual[worst_at] << " vs "
        << expected.float_data(worst_at);
  }
}

class OnnxFixtureTest : public ::testing::TestWithParam<std::string> {};

TEST(OnnxFixturesTest, FixturesArePresent) {
  // Guards the parameterised test against silently running nothing.
  EXPECT_GE(CaseNames().size(), 30u) << "in " << kFixtureDir;
}

TEST_P(OnnxFixtureTest, MatchesPyTorch) {
  const test::OnnxCase onnx_case = ReadCase(GetParam());
  absl::StatusOr<v1::Model> proto =
      ImportOnnxFile(kFixtureDir + "/" + onnx_case.onnx_file(), {});
  if (onnx_case.expected_error_size() > 0) {
    ASSERT_FALSE(proto.ok()) << "a refused fixture loaded";
    for (const std::string& part : onnx_case.expected_error()) {
      EXPECT_NE(proto.status().message().find(part), std::string::npos)
          << "'" << part << "' not in: " << proto.status().message();
    }
    return;
  }
  ASSERT_TRUE(proto.ok()) << proto.status();
  absl::StatusOr<std::shared_ptr<const Model>> model =
      Model::Create(ModelSpecFromProto(*proto));
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<inference::ModelInferResponse> batch =
      Infer(**model, onnx_case.batch());
  ASSERT_TRUE(batch.ok()) << batch.status();
  ExpectOutputs(*batch, onnx_case.batch(), onnx_case.tolerance(), "batch");
  for (int i = 0; i < onnx_case.solo_size(); ++i) {
    absl::StatusOr<inference::ModelInferResponse> solo =
        Infer(**model, onnx_case.solo(i));
    ASSERT_TRUE(solo.ok()) << solo.status();
    ExpectOutputs(*solo, onnx_case.solo(i), onnx_case.tolerance(),
                  absl::StrCat("solo ", i));
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, OnnxFixtureTest,
                         ::testing::ValuesIn(CaseNames()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace biserve
