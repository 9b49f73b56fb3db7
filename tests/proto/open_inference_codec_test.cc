#include "proto/open_inference_codec.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/model/model.h"
#include "core/model/model_spec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/random_model.h"

namespace biserve {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::RandomValues;
using testing::RandomWeights;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

RnnLayerSpec Lstm(std::mt19937& rng, const std::string& name, int units,
                  int input_size) {
  RnnLayerSpec spec;
  spec.name = name;
  spec.cell = CellType::kLstm;
  spec.units = units;
  spec.return_sequences = true;
  spec.weights.kernel = RandomWeights(rng, {input_size, 4 * units});
  spec.weights.recurrent_kernel = RandomWeights(rng, {units, 4 * units});
  spec.weights.bias = RandomWeights(rng, {4 * units});
  return spec;
}

// features [T, 3], or token ids in [0, 10) through an Embedding of 3, ->
// Bidirectional(LSTM 2, sequences, concat) named "bi": four initial states.
std::shared_ptr<const Model> BuildModel(bool tokens) {
  std::mt19937 rng(4);
  ModelSpec spec;
  spec.name = tokens ? "tokens" : "features";
  if (tokens) {
    EmbeddingSpec embedding;
    embedding.name = "embed";
    embedding.input_dim = 10;
    embedding.output_dim = 3;
    embedding.embeddings = Tensor{{10, 3}, RandomValues(rng, 30)};
    spec.layers.push_back(embedding);
  } else {
    spec.input_dim = 3;
  }
  BidirectionalSpec bi;
  bi.name = "bi";
  bi.layer = Lstm(rng, "bi_forward", 2, 3);
  bi.backward_weights = Lstm(rng, "", 2, 3).weights;
  bi.merge_mode = "concat";
  spec.layers.push_back(bi);
  absl::StatusOr<std::shared_ptr<const Model>> model = Model::Create(spec);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? *model : nullptr;
}

using InputTensor = inference::ModelInferRequest::InferInputTensor;

InputTensor* AddFp32(inference::ModelInferRequest& request,
                     const std::string& name, std::vector<int64_t> shape,
                     const std::vector<float>& values) {
  InputTensor* input = request.add_inputs();
  input->set_name(name);
  input->set_datatype("FP32");
  input->mutable_shape()->Assign(shape.begin(), shape.end());
  input->mutable_contents()->mutable_fp32_contents()->Assign(values.begin(),
                                                             values.end());
  return input;
}

InputTensor* AddInt32(inference::ModelInferRequest& request,
                      const std::string& name, std::vector<int64_t> shape,
                      const std::vector<int32_t>& values) {
  InputTensor* input = request.add_inputs();
  input->set_name(name);
  input->set_datatype("INT32");
  input->mutable_shape()->Assign(shape.begin(), shape.end());
  input->mutable_contents()->mutable_int_contents()->Assign(values.begin(),
                                                            values.end());
  return input;
}

class PredictRequestFromInferTest : public ::testing::Test {
 protected:
  // The INVALID_ARGUMENT message of converting request_, or a failure.
  std::string Error() {
    absl::StatusOr<OpenInferCall> call =
        PredictRequestFromInfer(request_, *model_, limits_);
    EXPECT_EQ(call.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(call.status().message());
  }

  // Features [2, 3, 3] of ones, with `lengths` when given.
  void AddFeatures(std::vector<float> values = std::vector<float>(18, 1.0f)) {
    AddFp32(request_, "features", {2, 3, 3}, values);
  }
  // All four initial states [2, 2] of zeros, with `value` at `at` of
  // backward_c.
  void AddStates(int at = -1, float value = 0.0f) {
    for (const char* name :
         {"forward_h", "forward_c", "backward_h", "backward_c"}) {
      std::vector<float> values(4, 0.0f);
      if (at >= 0 && std::string(name) == "backward_c") values[at] = value;
      AddFp32(request_, absl::StrCat("initial_state/bi/", name), {2, 2},
              values);
    }
  }

  std::shared_ptr<const Model> model_ = BuildModel(/*tokens=*/false);
  RequestLimits limits_;
  inference::ModelInferRequest request_;
};

TEST_F(PredictRequestFromInferTest, FeaturesForATokenModelNameTokenIds) {
  // Reported: the message must name what the model takes.
  model_ = BuildModel(/*tokens=*/true);
  request_.set_model_name("brackets");
  AddFp32(request_, "features", {1, 2, 8}, std::vector<float>(16, 0.5f));
  EXPECT_EQ(Error(),
            "input 'features': model 'brackets' takes token_ids (INT32 or "
            "INT64 [batch, time], an Embedding input), not features");
}

TEST_F(PredictRequestFromInferTest, TokenIdsForAFeatureModelNameFeatures) {
  request_.set_model_name("example");
  AddInt32(request_, "token_ids", {1, 2}, {4, 5});
  EXPECT_EQ(Error(),
            "input 'token_ids': model 'example' takes features (FP32 [batch, "
            "time, 3]), not token_ids");
}

TEST_F(PredictRequestFromInferTest, MissingDataInputNamesWhatTheModelTakes) {
  request_.set_model_name("example");
  AddInt32(request_, "lengths", {1}, {1});
  EXPECT_EQ(Error(),
            "input 'features' is missing: model 'example' takes features "
            "(FP32 [batch, time, 3])");
}

TEST_F(PredictRequestFromInferTest, NaNInFeaturesIsNamedByTensorAndIndex) {
  // Reported as "sequences[1].features[2][0]" (PredictRequest's terms)
  // before: the client sent a tensor, and its index is [1, 2, 0].
  std::vector<float> values(18, 1.0f);
  values[1 * 9 + 2 * 3 + 0] = kNaN;
  AddFeatures(values);
  EXPECT_EQ(Error(),
            "input 'features': element [1, 2, 0] is NaN; inputs must be finite "
            "(unless the server runs with --allow_non_finite)");
}

TEST_F(PredictRequestFromInferTest, InfinityInFeaturesIsNamedWithItsSign) {
  std::vector<float> values(18, 1.0f);
  values[0 * 9 + 1 * 3 + 2] = -kInf;
  AddFeatures(values);
  EXPECT_THAT(Error(),
              HasSubstr("input 'features': element [0, 1, 2] is -Inf"));
  values[0 * 9 + 1 * 3 + 2] = kInf;
  request_.clear_inputs();
  AddFeatures(values);
  EXPECT_THAT(Error(),
              HasSubstr("input 'features': element [0, 1, 2] is +Inf"));
}

TEST_F(PredictRequestFromInferTest, NaNInRawFeaturesIsNamedToo) {
  std::vector<float> values(18, 1.0f);
  values[17] = kNaN;
  InputTensor* input = AddFp32(request_, "features", {2, 3, 3}, {});
  input->clear_contents();
  std::string raw(values.size() * sizeof(float), '\0');
  std::memcpy(raw.data(), values.data(), raw.size());
  request_.add_raw_input_contents(raw);
  EXPECT_THAT(Error(), HasSubstr("input 'features': element [1, 2, 2] is NaN"));
}

TEST_F(PredictRequestFromInferTest, NaNInPaddingPastTheLengthIsNeverRead) {
  // Steps past lengths[b] are padding, never computed: a NaN there is no
  // input to the model.
  std::vector<float> values(18, 1.0f);
  values[0 * 9 + 2 * 3 + 1] = kNaN;  // sequence 0, step 2: padding
  AddFeatures(values);
  AddInt32(request_, "lengths", {2}, {2, 3});
  absl::StatusOr<OpenInferCall> call =
      PredictRequestFromInfer(request_, *model_, limits_);
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(call->request.sequences(0).length(), 2);
}

TEST_F(PredictRequestFromInferTest, NaNInAnInitialStateIsNamedByTensor) {
  AddFeatures();
  AddStates(/*at=*/3, kNaN);  // backward_c [1, 1]
  EXPECT_EQ(Error(),
            "input 'initial_state/bi/backward_c': element [1, 1] is NaN; "
            "initial states must be finite (unless the server runs with "
            "--allow_non_finite)");
}

TEST_F(PredictRequestFromInferTest, NonFiniteValuesPassWhenAllowed) {
  std::vector<float> values(18, 1.0f);
  values[4] = kNaN;
  AddFeatures(values);
  AddStates(/*at=*/0, kInf);
  limits_.allow_non_finite = true;
  absl::StatusOr<OpenInferCall> call =
      PredictRequestFromInfer(request_, *model_, limits_);
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_TRUE(std::isnan(call->request.sequences(0).features(4)));
  // The form without limits leaves the rule to SequencesFromRequest.
  EXPECT_TRUE(PredictRequestFromInfer(request_, *model_).ok());
}

TEST_F(PredictRequestFromInferTest, ClientNamesAreQuotedAndCut) {
  AddFeatures();
  const std::string huge(1000, 'm');
  AddFp32(request_, huge + "\n", {1}, {0.0f});
  std::string error = Error();
  EXPECT_EQ(error, absl::StrCat("unknown input '", std::string(100, 'm'),
                                "'... (1001 bytes); this model takes: "
                                "features, lengths, initial_state/bi/"
                                "forward_h, initial_state/bi/forward_c, "
                                "initial_state/bi/backward_h, "
                                "initial_state/bi/backward_c"));

  request_.clear_inputs();
  AddFeatures();
  request_.add_outputs()->set_name("out\x01put\xff");
  EXPECT_THAT(Error(), HasSubstr("unknown output 'out\\x01put\\xff'; "));

  request_.clear_outputs();
  request_.mutable_inputs(0)->set_datatype(std::string(300, 'F') + "\"");
  error = Error();
  EXPECT_THAT(error, HasSubstr("input 'features': expected datatype FP32, "
                               "got 'FFFF"));
  EXPECT_THAT(error, HasSubstr("'... (301 bytes)"));
  EXPECT_THAT(error, Not(HasSubstr(std::string(101, 'F'))));
}

TEST_F(PredictRequestFromInferTest, AShapeOfManyDimensionsIsShownCut) {
  InputTensor* input = AddFp32(request_, "features", {}, {});
  for (int d = 0; d < 10000; ++d) input->add_shape(1);
  const std::string error = Error();
  EXPECT_THAT(error, HasSubstr("got [1, 1, 1, 1, 1, 1, 1, 1, ...] (10000 "
                               "dimensions)"));
  EXPECT_LT(error.size(), 200u);
}

}  // namespace
}  // namespace biserve
