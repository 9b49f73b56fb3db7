// The Open Inference codec for models with a signature (as imported from
// ONNX): metadata in the graph's names, requests in its names and layouts
// equal to the same sequences sent alone in biserve's names, padding rows
// as ONNX Runtime fills them, and biserve's names still working.
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/thread_pool.h"
#include "core/model/model.h"
#include "core/model/model_spec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/inference_codec.h"
#include "proto/model_codec.h"
#include "proto/open_inference_codec.h"
#include "proto/parse_text_proto.h"
#include "proto/reply_size.h"
#include "tests/support/random_model.h"

namespace biserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::RandomValues;
using testing::RandomWeights;
using InputTensor = inference::ModelInferRequest::InferInputTensor;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kTolerance = 1e-6f;

// ---- Models: PyTorch's shapes, Keras' layers, random weights. ----

RnnLayerSpec Rnn(std::mt19937& rng, CellType cell, int units, int input) {
  RnnLayerSpec spec;
  spec.cell = cell;
  spec.units = units;
  spec.return_sequences = true;
  const int gates = GateCount(cell);
  spec.weights.kernel = RandomWeights(rng, {input, gates * units});
  spec.weights.recurrent_kernel = RandomWeights(rng, {units, gates * units});
  spec.weights.bias = cell == CellType::kGru
                          ? RandomWeights(rng, {2, gates * units})
                          : RandomWeights(rng, {gates * units});
  return spec;
}

BidirectionalSpec Bidi(std::mt19937& rng, const std::string& name,
                       CellType cell, int units, int input) {
  BidirectionalSpec bi;
  bi.name = name;
  bi.layer = Rnn(rng, cell, units, input);
  bi.backward_weights = Rnn(rng, cell, units, input).weights;
  return bi;
}

// nn.LSTM(3, 2, bidirectional=True): features 3 -> Bidirectional(LSTM 2)
// "bi".
ModelSpec LstmSpec() {
  std::mt19937 rng(21);
  ModelSpec spec;
  spec.name = "lstm";
  spec.input_dim = 3;
  spec.layers.push_back(Bidi(rng, "bi", CellType::kLstm, 2, 3));
  return spec;
}

// nn.GRU(2, 3, num_layers=2, bidirectional=True): features 2 ->
// Bidirectional(GRU 3) "bi1" -> Bidirectional(GRU 3) "bi2".
ModelSpec Gru2Spec() {
  std::mt19937 rng(22);
  ModelSpec spec;
  spec.name = "gru2";
  spec.input_dim = 2;
  spec.layers.push_back(Bidi(rng, "bi1", CellType::kGru, 3, 2));
  spec.layers.push_back(Bidi(rng, "bi2", CellType::kGru, 3, 6));
  return spec;
}

// A tagger: token ids < 10 -> Embedding 4 -> Bidirectional(LSTM 3) "bi" ->
// Dense(5, log_softmax) on every step.
ModelSpec TaggerSpec() {
  std::mt19937 rng(23);
  ModelSpec spec;
  spec.name = "tagger";
  EmbeddingSpec embedding;
  embedding.name = "embed";
  embedding.input_dim = 10;
  embedding.output_dim = 4;
  embedding.embeddings = RandomWeights(rng, {10, 4});
  spec.layers.push_back(embedding);
  spec.layers.push_back(Bidi(rng, "bi", CellType::kLstm, 3, 4));
  DenseSpec head;
  head.name = "head";
  head.units = 5;
  head.activation = "log_softmax";
  head.kernel = RandomWeights(rng, {6, 5});
  head.bias = Tensor{{5}, RandomValues(rng, 5, 2.0f)};
  spec.layers.push_back(head);
  return spec;
}

constexpr char kLstmSignature[] = R"pb(
  source: "onnx"
  inputs { name: "input" role: INPUT datatype: "FP32" }
  inputs { name: "lengths" role: LENGTHS datatype: "INT64" }
  inputs { name: "h0" role: INITIAL_H datatype: "FP32" }
  inputs { name: "c0" role: INITIAL_C datatype: "FP32" }
  outputs { name: "output" role: OUTPUT datatype: "FP32" }
  outputs { name: "h_n" role: FINAL_H datatype: "FP32" }
  outputs { name: "c_n" role: FINAL_C datatype: "FP32" }
)pb";

// batch_first=False: time-major input and output.
constexpr char kGruTimeMajorSignature[] = R"pb(
  source: "onnx"
  inputs { name: "x" role: INPUT datatype: "FP32" time_major: true }
  inputs { name: "seq_lens" role: LENGTHS datatype: "INT32" }
  inputs { name: "h0" role: INITIAL_H datatype: "FP32" }
  outputs { name: "y" role: OUTPUT datatype: "FP32" time_major: true }
  outputs { name: "h_n" role: FINAL_H datatype: "FP32" }
)pb";

constexpr char kGruBatchFirstSignature[] = R"pb(
  source: "onnx"
  inputs { name: "x" role: INPUT datatype: "FP32" }
  inputs { name: "seq_lens" role: LENGTHS datatype: "INT32" }
  inputs { name: "h0" role: INITIAL_H datatype: "FP32" }
  outputs { name: "y" role: OUTPUT datatype: "FP32" }
  outputs { name: "h_n" role: FINAL_H datatype: "FP32" }
)pb";

constexpr char kTaggerSignature[] = R"pb(
  source: "onnx"
  inputs { name: "tokens" role: INPUT datatype: "INT64" }
  inputs { name: "lengths" role: LENGTHS datatype: "INT64" }
  outputs { name: "log_probs" role: OUTPUT datatype: "FP32" }
)pb";

// `spec` with the signature written as a model file's `signature { ... }`
// block, read the way a model file is (ModelSpecFromProto).
std::shared_ptr<const Model> WithSignature(ModelSpec spec,
                                           const std::string& signature) {
  v1::Model proto;
  const absl::Status parsed =
      ParseTextProto(absl::StrCat("signature {", signature, "}"), &proto);
  EXPECT_TRUE(parsed.ok()) << parsed;
  spec.signature = ModelSpecFromProto(proto).signature;
  absl::StatusOr<std::shared_ptr<const Model>> model = Model::Create(spec);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? *model : nullptr;
}

// ---- Requests and replies. ----

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

void AddInt64(inference::ModelInferRequest& request, const std::string& name,
              std::vector<int64_t> shape, const std::vector<int64_t>& values) {
  InputTensor* input = request.add_inputs();
  input->set_name(name);
  input->set_datatype("INT64");
  input->mutable_shape()->Assign(shape.begin(), shape.end());
  input->mutable_contents()->mutable_int64_contents()->Assign(values.begin(),
                                                              values.end());
}

void AddInt32(inference::ModelInferRequest& request, const std::string& name,
              std::vector<int64_t> shape, const std::vector<int32_t>& values) {
  InputTensor* input = request.add_inputs();
  input->set_name(name);
  input->set_datatype("INT32");
  input->mutable_shape()->Assign(shape.begin(), shape.end());
  input->mutable_contents()->mutable_int_contents()->Assign(values.begin(),
                                                            values.end());
}

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

// What the server does with a ModelInfer request: PredictRequestFromInfer,
// Evaluate, InferResponseFromPredict. Also checks that the reply's size
// was known before it was computed (InferResponseBytes).
class Server {
 public:
  Server() {
    auto pool = ThreadPool::Create({.num_threads = 2});
    EXPECT_TRUE(pool.ok());
    pool_ = *std::move(pool);
  }

  inference::ModelInferResponse Infer(
      const Model& model, const inference::ModelInferRequest& request,
      OpenInferCall* parsed = nullptr) {
    absl::StatusOr<OpenInferCall> call =
        PredictRequestFromInfer(request, model, RequestLimits());
    EXPECT_TRUE(call.ok()) << call.status();
    if (!call.ok()) return {};
    absl::StatusOr<std::vector<SequenceInput>> inputs =
        SequencesFromRequest(call->request, model, RequestLimits());
    EXPECT_TRUE(inputs.ok()) << inputs.status();
    absl::StatusOr<std::vector<SequenceResult>> results = Evaluate(
        model, *inputs, EvalOptionsFromRequest(call->request, RequestLimits()),
        *pool_);
    EXPECT_TRUE(results.ok()) << results.status();
    v1::PredictResponse predict;
    predict.set_model_name(request.model_name());
    predict.set_model_version(1);
    predict.set_request_id(call->request.request_id());
    ResultsToResponse(model, *std::move(results), &predict);
    inference::ModelInferResponse response;
    const absl::Status answered =
        InferResponseFromPredict(predict, *call, model, &response);
    EXPECT_TRUE(answered.ok()) << answered;
    EXPECT_EQ(InferResponseBytes(*call, model, request.model_name(), 1),
              static_cast<int64_t>(response.ByteSizeLong()));
    if (parsed != nullptr) *parsed = *std::move(call);
    return response;
  }

 private:
  std::unique_ptr<ThreadPool> pool_;
};

// Output `name` of a reply, typed or raw, with its shape.
struct Output {
  std::vector<int64_t> shape;
  std::vector<float> values;
};

Output Get(const inference::ModelInferResponse& response,
           const std::string& name) {
  for (int i = 0; i < response.outputs_size(); ++i) {
    const auto& out = response.outputs(i);
    if (out.name() != name) continue;
    Output got{{out.shape().begin(), out.shape().end()}, {}};
    if (response.raw_output_contents_size() > 0) {
      const std::string& raw = response.raw_output_contents(i);
      got.values.resize(raw.size() / sizeof(float));
      std::memcpy(got.values.data(), raw.data(), raw.size());
    } else {
      got.values.assign(out.contents().fp32_contents().begin(),
                        out.contents().fp32_contents().end());
    }
    return got;
  }
  ADD_FAILURE() << "no output " << name;
  return {};
}

std::vector<std::string> OutputNames(
    const inference::ModelInferResponse& response) {
  std::vector<std::string> names;
  for (const auto& out : response.outputs()) names.push_back(out.name());
  return names;
}

// values[offset, offset + count).
std::vector<float> Slice(const std::vector<float>& values, int64_t offset,
                         int64_t count) {
  return std::vector<float>(values.begin() + offset,
                            values.begin() + offset + count);
}

MATCHER_P(Near, expected, "") {
  if (arg.size() != expected.size()) return false;
  for (size_t i = 0; i < arg.size(); ++i) {
    if (!(std::fabs(arg[i] - expected[i]) <= kTolerance)) {
      *result_listener << "at " << i << ": " << arg[i] << " vs " << expected[i];
      return false;
    }
  }
  return true;
}

std::vector<std::string> Specs(const std::vector<OpenTensorSpec>& tensors) {
  std::vector<std::string> out;
  for (const OpenTensorSpec& t : tensors) {
    out.push_back(absl::StrCat(t.name, " ", t.datatype, " [",
                               absl::StrJoin(t.shape, ","), "]"));
  }
  return out;
}

// ---- Metadata. ----

TEST(SignatureMetadataTest, ListsOnlyTheGraphsNamesWithPyTorchsShapes) {
  std::shared_ptr<const Model> lstm = WithSignature(LstmSpec(), kLstmSignature);
  EXPECT_THAT(Specs(OpenInferenceInputs(*lstm)),
              ElementsAre("input FP32 [-1,-1,3]", "lengths INT64 [-1]",
                          "h0 FP32 [2,-1,2]", "c0 FP32 [2,-1,2]"));
  EXPECT_THAT(Specs(OpenInferenceOutputs(*lstm)),
              ElementsAre("output FP32 [-1,-1,4]", "h_n FP32 [2,-1,2]",
                          "c_n FP32 [2,-1,2]"));

  std::shared_ptr<const Model> gru =
      WithSignature(Gru2Spec(), kGruTimeMajorSignature);
  EXPECT_THAT(Specs(OpenInferenceInputs(*gru)),
              ElementsAre("x FP32 [-1,-1,2]", "seq_lens INT32 [-1]",
                          "h0 FP32 [2,-1,3]"));
  EXPECT_THAT(Specs(OpenInferenceOutputs(*gru)),
              ElementsAre("y FP32 [-1,-1,6]", "h_n FP32 [4,-1,3]"));

  std::shared_ptr<const Model> tagger =
      WithSignature(TaggerSpec(), kTaggerSignature);
  EXPECT_THAT(Specs(OpenInferenceInputs(*tagger)),
              ElementsAre("tokens INT64 [-1,-1]", "lengths INT64 [-1]"));
  EXPECT_THAT(Specs(OpenInferenceOutputs(*tagger)),
              ElementsAre("log_probs FP32 [-1,-1,5]"));
}

TEST(SignatureMetadataTest, WithoutASignatureBiservesNames) {
  absl::StatusOr<std::shared_ptr<const Model>> model =
      Model::Create(LstmSpec());
  ASSERT_TRUE(model.ok());
  EXPECT_EQ(Specs(OpenInferenceInputs(**model))[0], "features FP32 [-1,-1,3]");
  EXPECT_EQ(Specs(OpenInferenceOutputs(**model))[0], "output FP32 [-1,-1,4]");
}

// ---- ModelInfer in the graph's names. ----

// One sequence alone in biserve's names: features [1, length, F], with the
// first layer's initial states in Keras' order when given.
inference::ModelInferRequest BiserveAlone(
    const Model& model, const std::vector<float>& features,
    const std::vector<std::vector<float>>& states = {}) {
  inference::ModelInferRequest request;
  const int64_t length =
      static_cast<int64_t>(features.size()) / model.input_dim();
  AddFp32(request, "features", {1, length, model.input_dim()}, features);
  const BidirectionalLayer& first =
      model.bidirectional(model.first_bidirectional());
  for (size_t k = 0; k < states.size(); ++k) {
    AddFp32(
        request,
        absl::StrCat("initial_state/", first.name, "/", first.states[k].name),
        {1, first.states[k].units}, states[k]);
  }
  request.add_outputs()->set_name("output");
  for (const StackLayer& layer : model.layers()) {
    const auto* bidi = std::get_if<BidirectionalLayer>(&layer);
    if (bidi == nullptr) continue;
    for (const StateSpec& state : bidi->states) {
      request.add_outputs()->set_name(
          absl::StrCat("state/", bidi->name, "/", state.name));
    }
  }
  return request;
}

TEST(SignatureInferTest, BatchFirstEqualsEachSequenceAlone) {
  std::shared_ptr<const Model> model =
      WithSignature(LstmSpec(), kLstmSignature);
  constexpr int64_t kB = 3, kT = 5, kF = 3, kD = 4, kUnits = 2;
  const std::vector<int64_t> lengths = {5, 2, 4};
  std::mt19937 rng(1);
  std::vector<float> x = RandomValues(rng, kB * kT * kF);
  x[(1 * kT + 3) * kF + 1] = kNaN;  // padding of sequence 1: never read
  inference::ModelInferRequest request;
  request.set_model_name("lstm");
  AddFp32(request, "input", {kB, kT, kF}, x);
  AddInt64(request, "lengths", {kB}, lengths);
  Server server;
  OpenInferCall call;
  const inference::ModelInferResponse response =
      server.Infer(*model, request, &call);
  EXPECT_TRUE(call.signature);
  EXPECT_TRUE(call.request.return_states());
  // No outputs requested: all of the signature's, in its order.
  EXPECT_THAT(OutputNames(response), ElementsAre("output", "h_n", "c_n"));
  const Output output = Get(response, "output");
  const Output h_n = Get(response, "h_n");
  const Output c_n = Get(response, "c_n");
  EXPECT_THAT(output.shape, ElementsAre(kB, kT, kD));
  EXPECT_THAT(h_n.shape, ElementsAre(2, kB, kUnits));
  EXPECT_THAT(c_n.shape, ElementsAre(2, kB, kUnits));

  for (int64_t b = 0; b < kB; ++b) {
    SCOPED_TRACE(::testing::Message() << "sequence " << b);
    const inference::ModelInferResponse alone = server.Infer(
        *model, BiserveAlone(*model, Slice(x, b * kT * kF, lengths[b] * kF)));
    const Output expected = Get(alone, "output");
    for (int64_t t = 0; t < kT; ++t) {
      EXPECT_THAT(Slice(output.values, (b * kT + t) * kD, kD),
                  Near(t < lengths[b] ? Slice(expected.values, t * kD, kD)
                                      : std::vector<float>(kD, 0.0f)))
          << "step " << t;
    }
    for (int d = 0; d < 2; ++d) {
      const std::string direction = d == 0 ? "forward" : "backward";
      EXPECT_THAT(Slice(h_n.values, (d * kB + b) * kUnits, kUnits),
                  Near(Get(alone, "state/bi/" + direction + "_h").values));
      EXPECT_THAT(Slice(c_n.values, (d * kB + b) * kUnits, kUnits),
                  Near(Get(alone, "state/bi/" + direction + "_c").values));
    }
  }
}

TEST(SignatureInferTest, InitialStatesGoToEachSequenceInKerasOrder) {
  std::shared_ptr<const Model> model =
      WithSignature(LstmSpec(), kLstmSignature);
  // h0[d, b, u] = 1 + 10 d + 100 b + u; c0 the same negated.
  std::vector<float> h0, c0;
  for (int d = 0; d < 2; ++d) {
    for (int b = 0; b < 2; ++b) {
      for (int u = 0; u < 2; ++u) {
        h0.push_back(1.0f + 10 * d + 100 * b + u);
        c0.push_back(-(1.0f + 10 * d + 100 * b + u));
      }
    }
  }
  std::mt19937 rng(2);
  const std::vector<float> x = RandomValues(rng, 2 * 3 * 3);
  inference::ModelInferRequest request;
  AddFp32(request, "input", {2, 3, 3}, x);
  AddFp32(request, "h0", {2, 2, 2}, h0);
  AddFp32(request, "c0", {2, 2, 2}, c0);
  absl::StatusOr<OpenInferCall> call =
      PredictRequestFromInfer(request, *model, RequestLimits());
  ASSERT_TRUE(call.ok()) << call.status();
  auto state = [&](int b, int k) {
    const auto& values = call->request.sequences(b).initial_state(k).values();
    return std::vector<float>(values.begin(), values.end());
  };
  // Keras: forward h, forward c, backward h, backward c.
  EXPECT_THAT(state(1, 0), ElementsAre(101, 102));
  EXPECT_THAT(state(1, 1), ElementsAre(-101, -102));
  EXPECT_THAT(state(1, 2), ElementsAre(111, 112));
  EXPECT_THAT(state(1, 3), ElementsAre(-111, -112));
  EXPECT_THAT(state(0, 2), ElementsAre(11, 12));

  // Results equal each sequence alone with the same initial states.
  Server server;
  const Output output = Get(server.Infer(*model, request), "output");
  for (int b = 0; b < 2; ++b) {
    std::vector<std::vector<float>> states;
    for (int k = 0; k < 4; ++k) states.push_back(state(b, k));
    const Output alone = Get(
        server.Infer(*model, BiserveAlone(*model, Slice(x, b * 9, 9), states)),
        "output");
    EXPECT_THAT(Slice(output.values, b * 12, 12), Near(alone.values));
  }

  // h0 alone: c starts at zeros.
  request.mutable_inputs()->RemoveLast();
  call = PredictRequestFromInfer(request, *model, RequestLimits());
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_THAT(state(1, 0), ElementsAre(101, 102));
  EXPECT_THAT(state(1, 1), ElementsAre(0, 0));
  EXPECT_THAT(state(1, 3), ElementsAre(0, 0));
}

// The same batch as [B, T, F] and as [T, B, F].
struct Layouts {
  std::vector<float> batch_first;
  std::vector<float> time_major;
};

Layouts RandomLayouts(std::mt19937& rng, int64_t batch, int64_t steps,
                      int64_t width) {
  Layouts x;
  x.batch_first = RandomValues(rng, batch * steps * width);
  x.time_major.resize(x.batch_first.size());
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t t = 0; t < steps; ++t) {
      std::copy_n(x.batch_first.begin() + (b * steps + t) * width, width,
                  x.time_major.begin() + (t * batch + b) * width);
    }
  }
  return x;
}

TEST(SignatureInferTest, TimeMajorIsTheTransposeOfBatchFirst) {
  std::shared_ptr<const Model> time_major =
      WithSignature(Gru2Spec(), kGruTimeMajorSignature);
  std::shared_ptr<const Model> batch_first =
      WithSignature(Gru2Spec(), kGruBatchFirstSignature);
  constexpr int64_t kB = 3, kT = 4, kF = 2, kD = 6, kUnits = 3;
  std::mt19937 rng(3);
  const Layouts x = RandomLayouts(rng, kB, kT, kF);
  const std::vector<float> h0 = RandomValues(rng, 2 * kB * kUnits);
  const std::vector<int32_t> lengths = {4, 1, 3};
  inference::ModelInferRequest tm, bf;
  AddFp32(tm, "x", {kT, kB, kF}, x.time_major);
  AddFp32(bf, "x", {kB, kT, kF}, x.batch_first);
  for (auto* request : {&tm, &bf}) {
    AddInt32(*request, "seq_lens", {kB}, lengths);
    AddFp32(*request, "h0", {2, kB, kUnits}, h0);
  }
  Server server;
  const inference::ModelInferResponse tm_reply = server.Infer(*time_major, tm);
  const inference::ModelInferResponse bf_reply = server.Infer(*batch_first, bf);
  const Output y_tm = Get(tm_reply, "y");
  const Output y_bf = Get(bf_reply, "y");
  EXPECT_THAT(y_tm.shape, ElementsAre(kT, kB, kD));
  EXPECT_THAT(y_bf.shape, ElementsAre(kB, kT, kD));
  for (int64_t b = 0; b < kB; ++b) {
    for (int64_t t = 0; t < kT; ++t) {
      EXPECT_THAT(Slice(y_tm.values, (t * kB + b) * kD, kD),
                  Near(Slice(y_bf.values, (b * kT + t) * kD, kD)))
          << "b " << b << " t " << t;
    }
  }
  const Output h_n = Get(tm_reply, "h_n");
  EXPECT_THAT(h_n.shape, ElementsAre(4, kB, kUnits));
  EXPECT_THAT(h_n.values, Near(Get(bf_reply, "h_n").values));

  // h_n: layer 0 forward, layer 0 backward, layer 1 forward, layer 1
  // backward, each sequence as it is alone.
  for (int64_t b = 0; b < kB; ++b) {
    std::vector<std::vector<float>> states = {
        Slice(h0, b * kUnits, kUnits), Slice(h0, (kB + b) * kUnits, kUnits)};
    const inference::ModelInferResponse alone = server.Infer(
        *time_major,
        BiserveAlone(*time_major,
                     Slice(x.batch_first, b * kT * kF, lengths[b] * kF),
                     states));
    const char* names[] = {"state/bi1/forward_h", "state/bi1/backward_h",
                           "state/bi2/forward_h", "state/bi2/backward_h"};
    for (int row = 0; row < 4; ++row) {
      EXPECT_THAT(Slice(h_n.values, (row * kB + b) * kUnits, kUnits),
                  Near(Get(alone, names[row]).values))
          << names[row] << " of sequence " << b;
    }
    const Output expected = Get(alone, "output");
    for (int64_t t = 0; t < lengths[b]; ++t) {
      EXPECT_THAT(Slice(y_tm.values, (t * kB + b) * kD, kD),
                  Near(Slice(expected.values, t * kD, kD)));
    }
  }
}

TEST(SignatureInferTest, TaggerPaddingRowsAreTheHeadOfAZeroStep) {
  const ModelSpec spec = TaggerSpec();
  std::shared_ptr<const Model> model = WithSignature(spec, kTaggerSignature);
  // log_softmax(0 * kernel + bias), computed here in double.
  const std::vector<float>& bias =
      std::get<DenseSpec>(spec.layers[2]).bias.values;
  double sum = 0;
  for (float v : bias) sum += std::exp(static_cast<double>(v));
  std::vector<float> padding;
  for (float v : bias) padding.push_back(static_cast<float>(v - std::log(sum)));

  const std::vector<int64_t> tokens = {1, 2, 3, 4,   // whole
                                       5, 0, 0, 0};  // one step, padding
  inference::ModelInferRequest request;
  AddInt64(request, "tokens", {2, 4}, tokens);
  AddInt64(request, "lengths", {2}, {4, 1});
  Server server;
  const inference::ModelInferResponse response = server.Infer(*model, request);
  const Output log_probs = Get(response, "log_probs");
  EXPECT_THAT(log_probs.shape, ElementsAre(2, 4, 5));
  for (int t = 1; t < 4; ++t) {
    EXPECT_THAT(Slice(log_probs.values, (4 + t) * 5, 5), Near(padding));
  }
  // The real steps are each sequence's alone, in biserve's names.
  inference::ModelInferRequest alone;
  AddInt32(alone, "token_ids", {1, 1}, {5});
  EXPECT_THAT(Slice(log_probs.values, 4 * 5, 5),
              Near(Get(server.Infer(*model, alone), "output").values));

  // Raw in, raw out, and INT32 ids for the INT64 the graph declares: the
  // same values.
  inference::ModelInferRequest raw;
  AddInt32(raw, "tokens", {2, 4}, {1, 2, 3, 4, 5, 0, 0, 0});
  AddInt32(raw, "lengths", {2}, {4, 1});
  MakeRaw(raw);
  const inference::ModelInferResponse raw_reply = server.Infer(*model, raw);
  EXPECT_EQ(raw_reply.raw_output_contents_size(), 1);
  EXPECT_EQ(Get(raw_reply, "log_probs").values, log_probs.values);
}

TEST(SignatureInferTest, OutputsAsRequested) {
  std::shared_ptr<const Model> model =
      WithSignature(LstmSpec(), kLstmSignature);
  inference::ModelInferRequest request;
  AddFp32(request, "input", {1, 2, 3}, std::vector<float>(6, 0.5f));
  request.add_outputs()->set_name("c_n");
  request.add_outputs()->set_name("output");
  Server server;
  OpenInferCall call;
  EXPECT_THAT(OutputNames(server.Infer(*model, request, &call)),
              ElementsAre("c_n", "output"));
  EXPECT_TRUE(call.request.return_states());
  request.clear_outputs();
  request.add_outputs()->set_name("output");
  server.Infer(*model, request, &call);
  EXPECT_FALSE(call.request.return_states());
}

// ---- Errors name the graph's tensors. ----

std::string Error(const Model& model,
                  const inference::ModelInferRequest& request) {
  absl::StatusOr<OpenInferCall> call =
      PredictRequestFromInfer(request, model, RequestLimits());
  EXPECT_EQ(call.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(call.status().message());
}

TEST(SignatureErrorsTest, UnknownNamesListTheGraphsNames) {
  std::shared_ptr<const Model> model =
      WithSignature(LstmSpec(), kLstmSignature);
  inference::ModelInferRequest request;
  AddFp32(request, "input", {1, 2, 3}, std::vector<float>(6, 0.5f));
  AddFp32(request, "initial_state/bi/forward_h", {1, 2}, {0, 0});
  EXPECT_EQ(Error(*model, request),
            "unknown input 'initial_state/bi/forward_h'; this model takes: "
            "input, lengths, h0, c0 (biserve's own names are not mixed with "
            "these)");
  request.mutable_inputs()->RemoveLast();
  request.add_outputs()->set_name("state/bi/forward_h");
  EXPECT_EQ(Error(*model, request),
            "unknown output 'state/bi/forward_h'; this model gives: output, "
            "h_n, c_n");

  // Neither the graph's input nor biserve's.
  inference::ModelInferRequest missing;
  AddFp32(missing, "inputs", {1, 2, 3}, std::vector<float>(6, 0.5f));
  missing.set_model_name("lstm");
  EXPECT_EQ(Error(*model, missing),
            "unknown input 'inputs'; this model takes: input, lengths, h0, c0 "
            "(or biserve's names: features, lengths, "
            "initial_state/bi/forward_h, initial_state/bi/forward_c, "
            "initial_state/bi/backward_h, initial_state/bi/backward_c)");
  inference::ModelInferRequest only_lengths;
  only_lengths.set_model_name("lstm");
  AddInt64(only_lengths, "lengths", {1}, {1});
  EXPECT_EQ(Error(*model, only_lengths),
            "input 'input' is missing: model 'lstm' takes input (FP32 [batch, "
            "time, 3]), or biserve's features (FP32 [batch, time, 3])");
}

TEST(SignatureErrorsTest, ShapesDatatypesAndValuesInTheGraphsTerms) {
  std::shared_ptr<const Model> lstm = WithSignature(LstmSpec(), kLstmSignature);
  std::shared_ptr<const Model> gru =
      WithSignature(Gru2Spec(), kGruTimeMajorSignature);
  std::shared_ptr<const Model> tagger =
      WithSignature(TaggerSpec(), kTaggerSignature);
  {
    inference::ModelInferRequest r;
    AddFp32(r, "input", {2, 5, 4}, std::vector<float>(40, 0.5f));
    EXPECT_EQ(Error(*lstm, r),
              "input 'input': expected shape [batch, time, 3], got [2, 5, 4]");
  }
  {
    inference::ModelInferRequest r;
    AddInt32(r, "input", {1, 2}, {1, 2});
    EXPECT_EQ(Error(*lstm, r),
              "input 'input': expected datatype FP32, got 'INT32'");
  }
  {
    inference::ModelInferRequest r;
    AddFp32(r, "x", {5, 2, 3}, std::vector<float>(30, 0.5f));
    EXPECT_EQ(Error(*gru, r),
              "input 'x': expected shape [time, batch, 2], got [5, 2, 3]");
  }
  {
    // x[t = 1, b = 0, f = 1], in the client's [T, B, F].
    std::vector<float> x(20, 0.5f);
    x[(1 * 2 + 0) * 2 + 1] = kNaN;
    inference::ModelInferRequest r;
    AddFp32(r, "x", {5, 2, 2}, x);
    EXPECT_THAT(Error(*gru, r),
                HasSubstr("input 'x': element [1, 0, 1] is NaN; inputs must "
                          "be finite"));
  }
  {
    inference::ModelInferRequest r;
    AddFp32(r, "x", {5, 2, 2}, std::vector<float>(20, 0.5f));
    AddInt32(r, "seq_lens", {2}, {5, 7});
    EXPECT_EQ(Error(*gru, r),
              "input 'seq_lens': seq_lens[1] = 7 is outside [1, 5] (the time "
              "dimension of 'x')");
    r.mutable_inputs(1)->mutable_contents()->set_int_contents(1, 0);
    EXPECT_EQ(Error(*gru, r),
              "input 'seq_lens': seq_lens[1] = 0 is outside [1, 5] (the time "
              "dimension of 'x')");
  }
  {
    inference::ModelInferRequest r;
    AddFp32(r, "x", {5, 2, 2}, std::vector<float>(20, 0.5f));
    AddFp32(r, "h0", {2, 3, 3}, std::vector<float>(18, 0.0f));
    EXPECT_EQ(Error(*gru, r),
              "input 'h0': expected shape [2, 2, 3] (directions, batch, "
              "units), got [2, 3, 3]");
    std::vector<float> h0(12, 0.0f);
    h0[(1 * 2 + 1) * 3 + 0] = kNaN;  // h0[1, 1, 0]
    r.mutable_inputs()->RemoveLast();
    AddFp32(r, "h0", {2, 2, 3}, h0);
    EXPECT_THAT(Error(*gru, r),
                HasSubstr("input 'h0': element [1, 1, 0] is NaN; initial "
                          "states must be finite"));
  }
  {
    inference::ModelInferRequest r;
    AddFp32(r, "x", {5, 2, 2}, std::vector<float>(20, 0.5f));
    r.add_outputs()->set_name("output");
    EXPECT_EQ(Error(*gru, r),
              "unknown output 'output'; this model gives: y, h_n");
  }
  {
    inference::ModelInferRequest r;
    AddInt64(r, "tokens", {2, 3}, {1, 2, 3, 4, 5, 12});
    EXPECT_EQ(Error(*tagger, r),
              "input 'tokens': tokens[1][2] = 12 is outside the vocabulary "
              "[0, 10)");
  }
}

// ---- biserve's names on the same model. ----

TEST(SignatureBiserveNamesTest, WorkAsOnAModelWithoutASignature) {
  std::shared_ptr<const Model> with = WithSignature(LstmSpec(), kLstmSignature);
  absl::StatusOr<std::shared_ptr<const Model>> without =
      Model::Create(LstmSpec());
  ASSERT_TRUE(without.ok());
  std::mt19937 rng(4);
  inference::ModelInferRequest request;
  AddFp32(request, "features", {2, 3, 3}, RandomValues(rng, 18));
  AddInt32(request, "lengths", {2}, {3, 2});
  AddFp32(request, "initial_state/bi/backward_c", {2, 2}, {1, 2, 3, 4});
  AddFp32(request, "initial_state/bi/backward_h", {2, 2}, {1, 2, 3, 4});
  AddFp32(request, "initial_state/bi/forward_c", {2, 2}, {1, 2, 3, 4});
  AddFp32(request, "initial_state/bi/forward_h", {2, 2}, {1, 2, 3, 4});
  request.add_outputs()->set_name("output");
  request.add_outputs()->set_name("state/bi/backward_c");
  Server server;
  OpenInferCall call;
  const inference::ModelInferResponse a = server.Infer(*with, request, &call);
  EXPECT_FALSE(call.signature);
  const inference::ModelInferResponse b = server.Infer(**without, request);
  EXPECT_EQ(a.SerializeAsString(), b.SerializeAsString());
  EXPECT_THAT(OutputNames(a), ElementsAre("output", "state/bi/backward_c"));
}

// ---- Model files. ----

// A hand-written model: features 1 -> Bidirectional(SimpleRNN 1) with
// weights 1, as PyTorch's nn.RNN(1, 1, bidirectional=True) exported.
constexpr char kSimpleRnnFile[] = R"pb(
  name: "tiny"
  input_dim: 1
  layers {
    bidirectional {
      name: "rnn"
      layer {
        cell: SIMPLE_RNN
        units: 1
        return_sequences: true
        weights {
          kernel {
            shape: [ 1, 1 ]
            values: [ 1 ]
          }
          recurrent_kernel {
            shape: [ 1, 1 ]
            values: [ 0.5 ]
          }
          bias {
            shape: [ 1 ]
            values: [ 0 ]
          }
        }
      }
      backward_weights {
        kernel {
          shape: [ 1, 1 ]
          values: [ 1 ]
        }
        recurrent_kernel {
          shape: [ 1, 1 ]
          values: [ 0.5 ]
        }
        bias {
          shape: [ 1 ]
          values: [ 0 ]
        }
      }
    }
  }
  signature {
    source: "onnx"
    inputs { name: "input" role: INPUT datatype: "FP32" time_major: true }
    inputs { name: "h0" role: INITIAL_H datatype: "FP32" }
    outputs { name: "output" role: OUTPUT datatype: "FP32" time_major: true }
    outputs { name: "h_n" role: FINAL_H datatype: "FP32" }
  }
)pb";

std::string WriteFile(const std::string& name, const std::string& text) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/", name);
  std::ofstream(path) << text;
  return path;
}

TEST(SignatureModelFileTest, AHandWrittenFileServesItsGraphsNames) {
  absl::StatusOr<std::shared_ptr<const Model>> model =
      LoadModelFile(WriteFile("tiny.pbtxt", kSimpleRnnFile));
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_TRUE((*model)->signature().has_value());
  EXPECT_EQ((*model)->signature()->source, "onnx");
  EXPECT_THAT(Specs(OpenInferenceOutputs(**model)),
              ElementsAre("output FP32 [-1,-1,2]", "h_n FP32 [2,-1,1]"));
  // Two steps of one sequence, time major: [T = 2, B = 1, 1]. Forward:
  // tanh(1), then tanh(2 + 0.5 tanh(1)); backward from the end: tanh(2),
  // then tanh(1 + 0.5 tanh(2)).
  inference::ModelInferRequest request;
  AddFp32(request, "input", {2, 1, 1}, {1, 2});
  Server server;
  const inference::ModelInferResponse response = server.Infer(**model, request);
  const float f0 = std::tanh(1.0f), f1 = std::tanh(2.0f + 0.5f * f0);
  const float b1 = std::tanh(2.0f), b0 = std::tanh(1.0f + 0.5f * b1);
  const Output output = Get(response, "output");
  EXPECT_THAT(output.shape, ElementsAre(2, 1, 2));
  EXPECT_THAT(output.values, Near(std::vector<float>{f0, b0, f1, b1}));
  EXPECT_THAT(Get(response, "h_n").values, Near(std::vector<float>{f1, b0}));
}

TEST(SignatureModelFileTest, AnEmptySignatureBlockIsNoSignature) {
  std::string text = kSimpleRnnFile;
  text = text.substr(0, text.find("signature {")) + "signature {}";
  absl::StatusOr<std::shared_ptr<const Model>> model =
      LoadModelFile(WriteFile("empty_signature.pbtxt", text));
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_FALSE((*model)->signature().has_value());
}

TEST(SignatureModelFileTest, AnInvalidSignatureIsRefusedWithThePath) {
  std::string text = kSimpleRnnFile;
  text.replace(text.find("\"h0\" role: INITIAL_H"),
               std::string("\"h0\" role: INITIAL_H").size(),
               "\"c0\" role: INITIAL_C");
  const std::string path = WriteFile("bad_signature.pbtxt", text);
  absl::StatusOr<std::shared_ptr<const Model>> model = LoadModelFile(path);
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(model.status().message(),
            absl::StrCat(path,
                         ": model 'tiny': signature input 'c0' (INITIAL_C): c "
                         "states are LSTM's; layer 'rnn' has a SimpleRNN "
                         "direction"));
}

}  // namespace
}  // namespace biserve
