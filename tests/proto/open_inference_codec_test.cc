#include "proto/open_inference_codec.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/model/model.h"
#include "core/model/model_spec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/random_model.h"

namespace biserve {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
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
// Bidirectional(LSTM 2, sequences, `merge_mode`) named "bi": four initial
// states.
std::shared_ptr<const Model> BuildModel(
    bool tokens, const std::string& merge_mode = "concat") {
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
  bi.merge_mode = merge_mode;
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

InputTensor* AddInt64(inference::ModelInferRequest& request,
                      const std::string& name, std::vector<int64_t> shape,
                      const std::vector<int64_t>& values) {
  InputTensor* input = request.add_inputs();
  input->set_name(name);
  input->set_datatype("INT64");
  input->mutable_shape()->Assign(shape.begin(), shape.end());
  input->mutable_contents()->mutable_int64_contents()->Assign(values.begin(),
                                                              values.end());
  return input;
}

// The bytes of `values` as raw_input_contents carries them (little-endian
// on the machines biserve runs on).
template <typename T>
std::string Raw(const std::vector<T>& values) {
  std::string raw(values.size() * sizeof(T), '\0');
  std::memcpy(raw.data(), values.data(), raw.size());
  return raw;
}

// Moves every input's contents into raw_input_contents.
void MakeRaw(inference::ModelInferRequest& request) {
  for (InputTensor& input : *request.mutable_inputs()) {
    const inference::InferTensorContents& c = input.contents();
    if (input.datatype() == "FP32") {
      request.add_raw_input_contents(Raw(std::vector<float>(
          c.fp32_contents().begin(), c.fp32_contents().end())));
    } else if (input.datatype() == "INT32") {
      request.add_raw_input_contents(Raw(std::vector<int32_t>(
          c.int_contents().begin(), c.int_contents().end())));
    } else {
      request.add_raw_input_contents(Raw(std::vector<int64_t>(
          c.int64_contents().begin(), c.int64_contents().end())));
    }
    input.clear_contents();
  }
}

// 0, 1, 2, ... as floats.
std::vector<float> Iota(int n) {
  std::vector<float> values(n);
  for (int i = 0; i < n; ++i) values[i] = static_cast<float>(i);
  return values;
}

std::vector<float> Floats(const google::protobuf::RepeatedField<float>& f) {
  return std::vector<float>(f.begin(), f.end());
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

// The parsed call, or a failure naming the status.
OpenInferCall Parse(const inference::ModelInferRequest& request,
                    const Model& model) {
  absl::StatusOr<OpenInferCall> call =
      PredictRequestFromInfer(request, model, RequestLimits{});
  EXPECT_TRUE(call.ok()) << call.status();
  return call.ok() ? *std::move(call) : OpenInferCall{};
}

TEST_F(PredictRequestFromInferTest, FeaturesBecomeOneSequencePerRow) {
  request_.set_model_name("example");
  request_.set_id("call-7");
  AddFeatures(Iota(18));
  AddInt64(request_, "lengths", {2}, {3, 1});
  const OpenInferCall call = Parse(request_, *model_);
  const v1::PredictRequest& predict = call.request;
  EXPECT_EQ(predict.model_name(), "example");
  EXPECT_EQ(predict.request_id(), "call-7");
  EXPECT_EQ(call.time_steps, 3);
  ASSERT_EQ(predict.sequences_size(), 2);
  EXPECT_EQ(predict.sequences(0).length(), 3);
  EXPECT_THAT(Floats(predict.sequences(0).features()),
              ElementsAreArray(std::vector<float>(Iota(9))));
  // Row 1 keeps its first step only: the rest is padding.
  EXPECT_EQ(predict.sequences(1).length(), 1);
  EXPECT_THAT(Floats(predict.sequences(1).features()),
              ElementsAre(9.0f, 10.0f, 11.0f));
  EXPECT_EQ(predict.sequences(0).initial_state_size(), 0);
  // No outputs named: the model's output, merged, in tensors' contents.
  EXPECT_THAT(call.outputs, ElementsAre("output"));
  EXPECT_EQ(predict.outputs(), v1::OUTPUT_SELECTION_MERGED);
  EXPECT_FALSE(predict.return_states());
  EXPECT_FALSE(call.raw_outputs);
}

TEST_F(PredictRequestFromInferTest, WithoutLengthsEverySequenceIsWhole) {
  AddFeatures();
  const OpenInferCall call = Parse(request_, *model_);
  ASSERT_EQ(call.request.sequences_size(), 2);
  EXPECT_EQ(call.request.sequences(1).length(), 3);
  EXPECT_EQ(call.request.sequences(1).features_size(), 9);
}

TEST_F(PredictRequestFromInferTest, TokenIdsAsInt32OrInt64) {
  model_ = BuildModel(/*tokens=*/true);
  AddInt64(request_, "token_ids", {2, 2}, {4, 9, 0, 3});
  AddInt32(request_, "lengths", {2}, {2, 1});
  OpenInferCall call = Parse(request_, *model_);
  ASSERT_EQ(call.request.sequences_size(), 2);
  EXPECT_THAT(call.request.sequences(0).token_ids(), ElementsAre(4, 9));
  EXPECT_THAT(call.request.sequences(1).token_ids(), ElementsAre(0));
  EXPECT_EQ(call.request.sequences(1).length(), 1);

  request_.clear_inputs();
  AddInt32(request_, "token_ids", {1, 3}, {1, 2, 3});
  call = Parse(request_, *model_);
  ASSERT_EQ(call.request.sequences_size(), 1);
  EXPECT_THAT(call.request.sequences(0).token_ids(), ElementsAre(1, 2, 3));
}

TEST_F(PredictRequestFromInferTest, RawInputContentsInEveryDatatype) {
  AddFeatures(Iota(18));
  AddInt32(request_, "lengths", {2}, {2, 3});
  MakeRaw(request_);
  OpenInferCall call = Parse(request_, *model_);
  ASSERT_EQ(call.request.sequences_size(), 2);
  EXPECT_EQ(call.request.sequences(0).length(), 2);
  const std::vector<float> values = Iota(18);
  EXPECT_THAT(Floats(call.request.sequences(1).features()),
              ElementsAreArray(values.begin() + 9, values.end()));
  // Raw in, raw out.
  EXPECT_TRUE(call.raw_outputs);

  model_ = BuildModel(/*tokens=*/true);
  request_ = {};
  AddInt64(request_, "token_ids", {1, 2}, {7, 8});
  AddInt64(request_, "lengths", {1}, {2});
  MakeRaw(request_);
  call = Parse(request_, *model_);
  EXPECT_THAT(call.request.sequences(0).token_ids(), ElementsAre(7, 8));

  request_ = {};
  AddInt32(request_, "token_ids", {1, 2}, {5, 6});
  MakeRaw(request_);
  call = Parse(request_, *model_);
  EXPECT_THAT(call.request.sequences(0).token_ids(), ElementsAre(5, 6));
}

TEST_F(PredictRequestFromInferTest, RawOutputParameterOverridesTheDefault) {
  AddFeatures();
  (*request_.mutable_parameters())["raw_output"].set_bool_param(true);
  EXPECT_TRUE(Parse(request_, *model_).raw_outputs);
  MakeRaw(request_);
  (*request_.mutable_parameters())["raw_output"].set_bool_param(false);
  EXPECT_FALSE(Parse(request_, *model_).raw_outputs);
  // Only a bool says so.
  (*request_.mutable_parameters())["raw_output"].set_string_param("false");
  EXPECT_TRUE(Parse(request_, *model_).raw_outputs);
}

TEST_F(PredictRequestFromInferTest, InitialStatesGoToEverySequenceInOrder) {
  AddFeatures();
  const char* names[] = {"forward_h", "forward_c", "backward_h", "backward_c"};
  // Given out of order: the request takes Keras' order.
  for (int k : {3, 1, 0, 2}) {
    std::vector<float> values = {10.0f * k, 10.0f * k + 1, 10.0f * k + 2,
                                 10.0f * k + 3};
    AddFp32(request_, absl::StrCat("initial_state/bi/", names[k]), {2, 2},
            values);
  }
  const OpenInferCall call = Parse(request_, *model_);
  ASSERT_EQ(call.request.sequences_size(), 2);
  for (int b = 0; b < 2; ++b) {
    const v1::Sequence& s = call.request.sequences(b);
    ASSERT_EQ(s.initial_state_size(), 4);
    for (int k = 0; k < 4; ++k) {
      EXPECT_THAT(s.initial_state(k).shape(), ElementsAre(2));
      EXPECT_THAT(Floats(s.initial_state(k).values()),
                  ElementsAre(10.0f * k + 2 * b, 10.0f * k + 2 * b + 1))
          << names[k] << " of sequence " << b;
    }
  }
}

TEST_F(PredictRequestFromInferTest, OutputSelectionFollowsTheNamedOutputs) {
  AddFeatures();
  auto select = [&](std::vector<std::string> names) {
    request_.clear_outputs();
    for (const std::string& name : names) {
      request_.add_outputs()->set_name(name);
    }
    return Parse(request_, *model_);
  };
  OpenInferCall call = select({"backward", "forward"});
  EXPECT_THAT(call.outputs, ElementsAre("backward", "forward"));
  EXPECT_EQ(call.request.outputs(), v1::OUTPUT_SELECTION_DIRECTIONS);
  EXPECT_FALSE(call.request.return_states());
  call = select({"forward", "output"});
  EXPECT_EQ(call.request.outputs(), v1::OUTPUT_SELECTION_BOTH);
  call = select({"state/bi/backward_c"});
  EXPECT_EQ(call.request.outputs(), v1::OUTPUT_SELECTION_MERGED);
  EXPECT_TRUE(call.request.return_states());
  EXPECT_THAT(call.outputs, ElementsAre("state/bi/backward_c"));

  // A model without a merged output (merge mode none) answers with its
  // directions by default.
  model_ = BuildModel(/*tokens=*/false, "none");
  call = select({});
  EXPECT_THAT(call.outputs, ElementsAre("forward", "backward"));
  EXPECT_EQ(call.request.outputs(), v1::OUTPUT_SELECTION_DIRECTIONS);
}

TEST_F(PredictRequestFromInferTest, ErrorsInTheRequestsFrame) {
  AddFeatures();
  AddInt32(request_, "lengths", {2}, {1, 1});
  request_.add_raw_input_contents(Raw(std::vector<float>(18, 0.0f)));
  EXPECT_EQ(Error(),
            "raw_input_contents has 1 entries for 2 inputs; give one per "
            "input, or none");
  request_.add_raw_input_contents(Raw(std::vector<int32_t>{1, 1}));
  request_.mutable_inputs(0)->clear_contents();
  EXPECT_EQ(Error(),
            "input 'lengths' has contents although raw_input_contents is "
            "used; give every input's data one way");

  request_ = {};
  AddFeatures();
  AddFeatures();
  EXPECT_EQ(Error(), "input 'features' is given twice");

  request_.clear_inputs();
  AddFeatures();
  request_.add_outputs()->set_name("forward");
  request_.add_outputs()->set_name("forward");
  EXPECT_EQ(Error(), "output 'forward' is requested twice");
  request_.clear_outputs();
  request_.add_outputs()->set_name("state/bi/forward_x");
  EXPECT_EQ(Error(),
            "unknown output 'state/bi/forward_x'; this model gives: output, "
            "forward, backward, state/bi/forward_h, state/bi/forward_c, "
            "state/bi/backward_h, state/bi/backward_c");
}

TEST_F(PredictRequestFromInferTest, ErrorsInTheDataTensor) {
  AddFp32(request_, "features", {2, 3, 4}, std::vector<float>(24, 0.0f));
  EXPECT_EQ(Error(),
            "input 'features': expected shape [batch, time, 3], got [2, 3, "
            "4]");
  request_.mutable_inputs(0)->set_datatype("FP64");
  EXPECT_EQ(Error(), "input 'features': expected datatype FP32, got 'FP64'");

  request_.clear_inputs();
  AddFp32(request_, "features", {0, 3, 3}, {});
  EXPECT_EQ(Error(),
            "input 'features': expected shape [batch, time, 3], got [0, 3, "
            "3]");

  request_.clear_inputs();
  AddFp32(request_, "features", {1000000, 1000000, 3}, {});
  EXPECT_EQ(Error(),
            "input 'features': shape [1000000, 1000000, 3] has more elements "
            "than the request carries values");

  request_.clear_inputs();
  AddFeatures(std::vector<float>(17, 0.0f));
  EXPECT_EQ(Error(),
            "input 'features' ('FP32' [2, 3, 3]): expected 18 values in "
            "contents, got 17");

  request_.clear_inputs();
  AddFp32(request_, "features", {2, 3, 3}, {})->clear_contents();
  request_.add_raw_input_contents(std::string(71, '\0'));
  EXPECT_EQ(Error(),
            "raw_input_contents[0] (input 'features', 'FP32' [2, 3, 3]): "
            "expected 72 bytes, got 71");
}

TEST_F(PredictRequestFromInferTest, ErrorsInLengthsAndTokenIds) {
  AddFeatures();
  AddInt32(request_, "lengths", {2}, {1, 4});
  EXPECT_EQ(Error(),
            "input 'lengths': lengths[1] = 4 is outside [1, 3] (the time "
            "dimension of 'features')");
  request_.mutable_inputs(1)->mutable_contents()->set_int_contents(1, 0);
  EXPECT_EQ(Error(),
            "input 'lengths': lengths[1] = 0 is outside [1, 3] (the time "
            "dimension of 'features')");
  request_.mutable_inputs(1)->add_shape(1);
  EXPECT_EQ(Error(), "input 'lengths': expected shape [2] (batch), got [2, 1]");
  request_.mutable_inputs(1)->set_datatype("FP32");
  EXPECT_EQ(Error(),
            "input 'lengths': expected datatype INT32 or INT64, got 'FP32'");

  model_ = BuildModel(/*tokens=*/true);
  request_ = {};
  AddInt32(request_, "token_ids", {1, 2}, {3, 10});
  EXPECT_EQ(Error(),
            "input 'token_ids': token_ids[0][1] = 10 is outside the "
            "vocabulary [0, 10)");
  request_.mutable_inputs(0)->mutable_contents()->set_int_contents(1, -1);
  EXPECT_EQ(Error(),
            "input 'token_ids': token_ids[0][1] = -1 is outside the "
            "vocabulary [0, 10)");
  request_.mutable_inputs(0)->add_shape(1);
  EXPECT_EQ(Error(),
            "input 'token_ids': expected shape [batch, time], got [1, 2, 1]");
}

TEST_F(PredictRequestFromInferTest, ErrorsInInitialStates) {
  AddFeatures();
  AddStates();
  request_.mutable_inputs()->RemoveLast();  // backward_c
  EXPECT_EQ(Error(),
            "input 'initial_state/bi/backward_c' is missing: give all initial "
            "states (initial_state/bi/forward_h, initial_state/bi/forward_c, "
            "initial_state/bi/backward_h, initial_state/bi/backward_c) or "
            "none");

  request_.clear_inputs();
  AddFeatures();
  AddStates();
  AddFp32(request_, "initial_state/bi/extra", {2, 2}, {0, 0, 0, 0});
  EXPECT_EQ(Error(),
            "unknown input 'initial_state/bi/extra'; initial states are "
            "named initial_state/bi/<forward_h|forward_c|backward_h|"
            "backward_c>");

  request_.clear_inputs();
  AddFeatures();
  AddStates();
  request_.mutable_inputs(1)->set_shape(1, 3);
  EXPECT_EQ(Error(),
            "input 'initial_state/bi/forward_h': expected shape [2, 2], got "
            "[2, 3]");
  request_.mutable_inputs(1)->set_datatype("INT32");
  EXPECT_EQ(Error(),
            "input 'initial_state/bi/forward_h': expected datatype FP32, got "
            "'INT32'");
}

TEST(OpenInferenceMetadataTest, InputsAndOutputsOfTheModel) {
  auto specs = [](const std::vector<OpenTensorSpec>& tensors) {
    std::vector<std::string> out;
    for (const OpenTensorSpec& t : tensors) {
      out.push_back(absl::StrCat(t.name, " ", t.datatype, " [",
                                 absl::StrJoin(t.shape, ","), "]"));
    }
    return out;
  };
  std::shared_ptr<const Model> model = BuildModel(/*tokens=*/false);
  EXPECT_THAT(specs(OpenInferenceInputs(*model)),
              ElementsAre("features FP32 [-1,-1,3]", "lengths INT32 [-1]",
                          "initial_state/bi/forward_h FP32 [-1,2]",
                          "initial_state/bi/forward_c FP32 [-1,2]",
                          "initial_state/bi/backward_h FP32 [-1,2]",
                          "initial_state/bi/backward_c FP32 [-1,2]"));
  EXPECT_THAT(
      specs(OpenInferenceOutputs(*model)),
      ElementsAre("output FP32 [-1,-1,4]", "forward FP32 [-1,-1,2]",
                  "backward FP32 [-1,-1,2]", "state/bi/forward_h FP32 [-1,2]",
                  "state/bi/forward_c FP32 [-1,2]",
                  "state/bi/backward_h FP32 [-1,2]",
                  "state/bi/backward_c FP32 [-1,2]"));
  model = BuildModel(/*tokens=*/true, "none");
  EXPECT_THAT(specs(OpenInferenceInputs(*model)),
              ::testing::Contains("token_ids INT32 [-1,-1]"));
  EXPECT_EQ(specs(OpenInferenceOutputs(*model))[0], "forward FP32 [-1,-1,2]");
}

// A PredictResponse as the server gives it for two sequences of lengths 3
// and 1 of BuildModel: outputs [length, 4] and directions [length, 2], each
// value 100 * b + its index; states [2] per state, 10 * k + b.
v1::PredictResponse Response() {
  v1::PredictResponse predict;
  predict.set_model_name("example");
  predict.set_model_version(7);
  predict.set_request_id("call-7");
  for (int b = 0; b < 2; ++b) {
    const int length = b == 0 ? 3 : 1;
    v1::SequenceOutput* s = predict.add_sequences();
    auto fill = [&](v1::Tensor* t, int width) {
      t->add_shape(length);
      t->add_shape(width);
      for (int i = 0; i < length * width; ++i) {
        t->add_values(100.0f * b + i);
      }
    };
    fill(s->mutable_output(), 4);
    fill(s->mutable_forward(), 2);
    fill(s->mutable_backward(), 2);
    v1::LayerStates* states = s->add_states();
    states->set_layer("bi");
    for (int k = 0; k < 4; ++k) {
      v1::Tensor* t = states->add_states();
      t->add_shape(2);
      t->add_values(10.0f * k + b);
      t->add_values(10.0f * k + b);
    }
  }
  return predict;
}

TEST(InferResponseFromPredictTest, PadsSequencesAndGathersStates) {
  std::shared_ptr<const Model> model = BuildModel(/*tokens=*/false);
  OpenInferCall call;
  call.time_steps = 3;
  call.outputs = {"output", "state/bi/backward_h", "forward"};
  inference::ModelInferResponse response;
  ASSERT_TRUE(
      InferResponseFromPredict(Response(), call, *model, &response).ok());
  EXPECT_EQ(response.model_name(), "example");
  EXPECT_EQ(response.model_version(), "7");
  EXPECT_EQ(response.id(), "call-7");
  ASSERT_EQ(response.outputs_size(), 3);
  EXPECT_EQ(response.raw_output_contents_size(), 0);

  const auto& output = response.outputs(0);
  EXPECT_EQ(output.name(), "output");
  EXPECT_EQ(output.datatype(), "FP32");
  EXPECT_THAT(output.shape(), ElementsAre(2, 3, 4));
  std::vector<float> expected = Iota(12);
  expected.resize(24, 0.0f);  // sequence 1: one step, then zeros
  for (int i = 0; i < 4; ++i) expected[12 + i] = 100.0f + i;
  EXPECT_THAT(Floats(output.contents().fp32_contents()),
              ElementsAreArray(expected));

  const auto& state = response.outputs(1);
  EXPECT_EQ(state.name(), "state/bi/backward_h");
  EXPECT_THAT(state.shape(), ElementsAre(2, 2));
  EXPECT_THAT(Floats(state.contents().fp32_contents()),
              ElementsAre(20.0f, 20.0f, 21.0f, 21.0f));

  EXPECT_THAT(response.outputs(2).shape(), ElementsAre(2, 3, 2));
}

TEST(InferResponseFromPredictTest, RawOutputsCarryTheSameValues) {
  std::shared_ptr<const Model> model = BuildModel(/*tokens=*/false);
  OpenInferCall call;
  call.time_steps = 3;
  call.outputs = {"backward", "state/bi/forward_c"};
  call.raw_outputs = true;
  inference::ModelInferResponse response;
  ASSERT_TRUE(
      InferResponseFromPredict(Response(), call, *model, &response).ok());
  ASSERT_EQ(response.raw_output_contents_size(), 2);
  EXPECT_FALSE(response.outputs(0).has_contents());
  std::vector<float> backward = Iota(6);
  backward.resize(12, 0.0f);
  backward[6] = 100.0f;
  backward[7] = 101.0f;
  EXPECT_EQ(response.raw_output_contents(0), Raw(backward));
  EXPECT_EQ(response.raw_output_contents(1),
            Raw(std::vector<float>{10.0f, 10.0f, 11.0f, 11.0f}));
}

TEST(InferResponseFromPredictTest, SequenceEndOutputsAreBatchByWidth) {
  // A model without return_sequences answers [D] per sequence: [B, D].
  std::shared_ptr<const Model> model = BuildModel(/*tokens=*/false);
  v1::PredictResponse predict;
  for (int b = 0; b < 2; ++b) {
    v1::Tensor* t = predict.add_sequences()->mutable_output();
    t->add_shape(4);
    for (int i = 0; i < 4; ++i) t->add_values(10.0f * b + i);
  }
  OpenInferCall call;
  call.time_steps = 5;
  call.outputs = {"output"};
  inference::ModelInferResponse response;
  ASSERT_TRUE(InferResponseFromPredict(predict, call, *model, &response).ok());
  EXPECT_THAT(response.outputs(0).shape(), ElementsAre(2, 4));
  EXPECT_THAT(Floats(response.outputs(0).contents().fp32_contents()),
              ElementsAre(0, 1, 2, 3, 10, 11, 12, 13));
}

TEST(InferResponseFromPredictTest, AStateTheModelLacksIsInternal) {
  std::shared_ptr<const Model> model = BuildModel(/*tokens=*/false);
  OpenInferCall call;
  call.outputs = {"state/other/forward_h"};
  inference::ModelInferResponse response;
  const absl::Status status =
      InferResponseFromPredict(Response(), call, *model, &response);
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(status.message(), "no state for output state/other/forward_h");
}

}  // namespace
}  // namespace biserve
