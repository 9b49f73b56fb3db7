// Model::Create's checks of a Signature against the model, and the padding
// step output that a signature's OUTPUT holds past a sequence's length.
#include "core/model/signature.h"

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "core/model/model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/random_model.h"

namespace biserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pointwise;
using testing::RandomWeights;

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

SignatureTensor SigTensor(const std::string& name, SignatureRole role,
                          const std::string& datatype,
                          bool time_major = false) {
  return SignatureTensor{name, role, datatype, time_major};
}

// input 4 -> Bidirectional(LSTM 3) -> Bidirectional(LSTM 3) -> Dense(5,
// softmax), with the signature of a PyTorch export: every role. Tests
// break one thing.
class SignatureValidationTest : public ::testing::Test {
 protected:
  // Also called again by tests to start over.
  void SetUp() override {
    spec_ = ModelSpec();
    spec_.name = "m";
    spec_.input_dim = 4;
    spec_.layers.push_back(Bidi(rng_, "bi1", CellType::kLstm, 3, 4));
    spec_.layers.push_back(Bidi(rng_, "bi2", CellType::kLstm, 3, 6));
    DenseSpec head;
    head.name = "head";
    head.units = 5;
    head.activation = "softmax";
    head.kernel = RandomWeights(rng_, {6, 5});
    head.bias = RandomWeights(rng_, {5});
    spec_.layers.push_back(head);
    spec_.signature = Signature{
        .source = "onnx",
        .inputs = {SigTensor("input", SignatureRole::kInput, "FP32"),
                   SigTensor("lengths", SignatureRole::kLengths, "INT64"),
                   SigTensor("h0", SignatureRole::kInitialH, "FP32"),
                   SigTensor("c0", SignatureRole::kInitialC, "FP32")},
        .outputs = {SigTensor("output", SignatureRole::kOutput, "FP32"),
                    SigTensor("h_n", SignatureRole::kFinalH, "FP32"),
                    SigTensor("c_n", SignatureRole::kFinalC, "FP32")}};
  }

  std::vector<SignatureTensor>& inputs() { return spec_.signature->inputs; }
  std::vector<SignatureTensor>& outputs() { return spec_.signature->outputs; }
  BidirectionalSpec& bi(int i) {
    return std::get<BidirectionalSpec>(spec_.layers[i]);
  }

  std::string Error() {
    auto model = Model::Create(spec_);
    EXPECT_FALSE(model.ok());
    if (model.ok()) return "";
    EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(model.status().message());
  }

  std::mt19937 rng_{11};
  ModelSpec spec_;
};

TEST_F(SignatureValidationTest, AValidSignatureIsKept) {
  auto model = Model::Create(spec_);
  ASSERT_TRUE(model.ok()) << model.status();
  const std::optional<Signature>& signature = (*model)->signature();
  ASSERT_TRUE(signature.has_value());
  EXPECT_EQ(signature->source, "onnx");
  EXPECT_EQ(signature->Find(SignatureRole::kFinalC)->name, "c_n");
  EXPECT_EQ(signature->Find(SignatureRole::kLengths)->name, "lengths");
}

TEST_F(SignatureValidationTest, NoSignatureIsNone) {
  spec_.signature.reset();
  auto model = Model::Create(spec_);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_FALSE((*model)->signature().has_value());
}

TEST_F(SignatureValidationTest, ExactlyOneInput) {
  inputs().erase(inputs().begin());
  EXPECT_THAT(Error(), HasSubstr("model 'm': signature: no INPUT"));
  SetUp();
  inputs().push_back(SigTensor("input2", SignatureRole::kInput, "FP32"));
  EXPECT_THAT(Error(), HasSubstr("signature input 'input2' (INPUT): a second "
                                 "INPUT; a signature has at most one tensor "
                                 "per role"));
}

TEST_F(SignatureValidationTest, AtMostOneTensorPerRole) {
  outputs().push_back(SigTensor("h_n2", SignatureRole::kFinalH, "FP32"));
  EXPECT_THAT(Error(),
              HasSubstr("signature output 'h_n2' (FINAL_H): a second FINAL_H"));
}

TEST_F(SignatureValidationTest, InputDatatypeFollowsTheModelsInput) {
  inputs()[0].datatype = "INT64";
  EXPECT_THAT(Error(),
              HasSubstr("signature input 'input' (INPUT): datatype must be "
                        "FP32 (float features); was 'INT64'"));

  // An Embedding model takes token ids.
  SetUp();
  EmbeddingSpec embedding;
  embedding.name = "embed";
  embedding.input_dim = 10;
  embedding.output_dim = 4;
  embedding.embeddings = RandomWeights(rng_, {10, 4});
  spec_.input_dim = 0;
  spec_.layers.insert(spec_.layers.begin(), embedding);
  EXPECT_THAT(Error(), HasSubstr("signature input 'input' (INPUT): datatype "
                                 "must be INT64 or INT32 (token ids of an "
                                 "Embedding model); was 'FP32'"));
  inputs()[0].datatype = "INT32";
  EXPECT_TRUE(Model::Create(spec_).ok());
}

TEST_F(SignatureValidationTest, LengthsAreIntegersStatesAndOutputsFloats) {
  inputs()[1].datatype = "FP32";
  EXPECT_THAT(Error(), HasSubstr("signature input 'lengths' (LENGTHS): "
                                 "datatype must be INT64 or INT32"));
  SetUp();
  outputs()[1].datatype = "";
  EXPECT_THAT(Error(), HasSubstr("signature output 'h_n' (FINAL_H): datatype "
                                 "must be FP32; was ''"));
}

TEST_F(SignatureValidationTest, RolesStayOnTheirSide) {
  inputs().push_back(SigTensor("y", SignatureRole::kOutput, "FP32"));
  EXPECT_THAT(Error(), HasSubstr("signature input 'y' (OUTPUT): is an output "
                                 "role; move it to signature.outputs"));
  SetUp();
  outputs().push_back(SigTensor("seq", SignatureRole::kLengths, "INT64"));
  EXPECT_THAT(Error(), HasSubstr("signature output 'seq' (LENGTHS): is an "
                                 "input role; move it to signature.inputs"));
  SetUp();
  outputs().push_back(SigTensor("what", SignatureRole::kUnspecified, "FP32"));
  EXPECT_THAT(Error(), HasSubstr("signature output 'what' (ROLE_UNSPECIFIED): "
                                 "role is not set; expected OUTPUT, FINAL_H "
                                 "or FINAL_C"));
}

TEST_F(SignatureValidationTest, NamesAreNonEmptyAndUnique) {
  inputs()[1].name = "";
  EXPECT_THAT(Error(),
              HasSubstr("signature input '' (LENGTHS): name is empty"));
  SetUp();
  outputs()[0].name = "input";  // an input's name
  EXPECT_THAT(Error(), HasSubstr("signature output 'input' (OUTPUT): the name "
                                 "is used twice"));
}

TEST_F(SignatureValidationTest, InitialStatesNeedEqualDirections) {
  RnnLayerSpec backward = Rnn(rng_, CellType::kLstm, 2, 4);
  backward.go_backwards = true;
  bi(0).backward_weights.reset();
  bi(0).backward_layer = backward;
  bi(1) = Bidi(rng_, "bi2", CellType::kLstm, 3, 5);
  outputs().resize(1);  // no final states: they would fail too
  EXPECT_THAT(Error(),
              HasSubstr("signature input 'h0' (INITIAL_H): the tensor is [2, "
                        "B, units], so the first Bidirectional layer's "
                        "directions need the same units; layer 'bi1' has "
                        "forward 3 and backward 2"));
}

TEST_F(SignatureValidationTest, InitialCNeedsLstm) {
  bi(0) = Bidi(rng_, "bi1", CellType::kGru, 3, 4);
  outputs().resize(2);  // no c_n
  EXPECT_THAT(Error(), HasSubstr("signature input 'c0' (INITIAL_C): c states "
                                 "are LSTM's; layer 'bi1' has a GRU "
                                 "direction"));
  inputs().resize(3);  // h0 alone is fine for a GRU
  EXPECT_TRUE(Model::Create(spec_).ok());
}

TEST_F(SignatureValidationTest, FinalStatesNeedTheSameUnitsInEveryLayer) {
  bi(1) = Bidi(rng_, "bi2", CellType::kLstm, 2, 6);
  std::get<DenseSpec>(spec_.layers[2]).kernel = RandomWeights(rng_, {4, 5});
  EXPECT_THAT(Error(),
              HasSubstr("signature output 'h_n' (FINAL_H): the tensor is [4, "
                        "B, units], so every Bidirectional layer's directions "
                        "need the same units; layer 'bi2' has forward 2 and "
                        "backward 2, the first layer forward 3"));
}

TEST_F(SignatureValidationTest, FinalCNeedsLstmEverywhere) {
  bi(1) = Bidi(rng_, "bi2", CellType::kGru, 3, 6);
  EXPECT_THAT(Error(), HasSubstr("signature output 'c_n' (FINAL_C): c states "
                                 "are LSTM's; layer 'bi2' has a GRU "
                                 "direction"));
}

TEST_F(SignatureValidationTest, OutputNeedsOneMergedOutput) {
  spec_.layers.pop_back();
  bi(1).merge_mode = "none";
  EXPECT_THAT(Error(), HasSubstr("signature output 'output' (OUTPUT): the "
                                 "model has no single output"));
  outputs().erase(outputs().begin());
  EXPECT_TRUE(Model::Create(spec_).ok());
}

TEST_F(SignatureValidationTest, TimeMajorOnlyWhereThereIsATimeAxis) {
  inputs()[0].time_major = true;
  outputs()[0].time_major = true;
  EXPECT_TRUE(Model::Create(spec_).ok());
  inputs()[1].time_major = true;
  EXPECT_THAT(Error(), HasSubstr("signature input 'lengths' (LENGTHS): "
                                 "time_major is only for INPUT and a "
                                 "sequence OUTPUT"));
  SetUp();
  outputs()[0].time_major = true;
  bi(1).layer.return_sequences = false;
  EXPECT_THAT(Error(), HasSubstr("signature output 'output' (OUTPUT): "
                                 "time_major is set, but the model's output "
                                 "has no time axis"));
}

TEST_F(SignatureValidationTest, PaddingStepOutputIsTheHeadsOfZero) {
  // Dense(5, softmax) of a zero row is softmax(bias).
  const std::vector<float>& bias =
      std::get<DenseSpec>(spec_.layers[2]).bias.values;
  std::vector<double> expected(bias.begin(), bias.end());
  double sum = 0;
  for (double& v : expected) sum += (v = std::exp(v));
  for (double& v : expected) v /= sum;
  auto model = Model::Create(spec_);
  ASSERT_TRUE(model.ok()) << model.status();
  const RowVector& padding = (*model)->padding_step_output();
  EXPECT_THAT(std::vector<float>(padding.data(), padding.data() + 5),
              Pointwise(::testing::FloatNear(1e-6), expected));
}

TEST_F(SignatureValidationTest, PaddingStepOutputWithoutHeadsIsZeros) {
  spec_.layers.pop_back();
  auto model = Model::Create(spec_);
  ASSERT_TRUE(model.ok()) << model.status();
  const RowVector& padding = (*model)->padding_step_output();
  EXPECT_EQ(padding.size(), 6);
  EXPECT_TRUE(padding.isZero());
}

TEST_F(SignatureValidationTest, NoPaddingStepOutputWithoutATimeAxis) {
  bi(1).layer.return_sequences = false;
  auto model = Model::Create(spec_);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->padding_step_output().size(), 0);
}

TEST(SignatureRoleTest, NamesAndSides) {
  EXPECT_EQ(SignatureRoleName(SignatureRole::kInitialC), "INITIAL_C");
  EXPECT_EQ(SignatureRoleName(SignatureRole::kUnspecified), "ROLE_UNSPECIFIED");
  std::vector<bool> sides;
  for (SignatureRole role : {SignatureRole::kInput, SignatureRole::kLengths,
                             SignatureRole::kInitialH, SignatureRole::kInitialC,
                             SignatureRole::kOutput, SignatureRole::kFinalH,
                             SignatureRole::kFinalC}) {
    sides.push_back(IsInputRole(role));
  }
  EXPECT_THAT(sides, ElementsAre(true, true, true, true, false, false, false));
}

}  // namespace
}  // namespace biserve
