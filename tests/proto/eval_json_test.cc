#include "proto/eval_json.h"

#include <random>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/random_model.h"

namespace biserve {
namespace {

using ::testing::HasSubstr;

std::shared_ptr<const Model> LstmModel(bool embedding) {
  std::mt19937 rng(1);
  ModelSpec spec;
  spec.input_dim = embedding ? 0 : 2;
  if (embedding) {
    spec.layers.push_back(
        EmbeddingSpec{"emb", 5, 2, testing::RandomWeights(rng, {5, 2})});
  }
  BidirectionalSpec bidi;
  bidi.layer.cell = CellType::kLstm;
  bidi.layer.units = 1;
  bidi.layer.weights = {testing::RandomWeights(rng, {2, 4}),
                        testing::RandomWeights(rng, {1, 4}),
                        testing::RandomWeights(rng, {4})};
  bidi.backward_weights = bidi.layer.weights;
  spec.layers.push_back(bidi);
  return *Model::Create(spec);
}

TEST(ParseEvalInputTest, ReadsFeaturesAndInitialState) {
  auto seqs = ParseEvalInput(
      R"({"sequences": [[[1, 2], [3, 4.5]], [[5, 6]]],
          "initial_state": [[[0.1], [0.2], [0.3], [0.4]], []]})",
      *LstmModel(false));
  ASSERT_TRUE(seqs.ok()) << seqs.status();
  ASSERT_EQ(seqs->size(), 2u);
  EXPECT_EQ((*seqs)[0].length, 2);
  EXPECT_EQ((*seqs)[0].features, (std::vector<float>{1, 2, 3, 4.5}));
  EXPECT_EQ((*seqs)[0].initial_state.size(), 4u);
  EXPECT_EQ((*seqs)[1].length, 1);
  EXPECT_TRUE((*seqs)[1].initial_state.empty());
}

TEST(ParseEvalInputTest, ReadsTokenIds) {
  auto seqs = ParseEvalInput(R"({"sequences": [[1, 4, 0]]})", *LstmModel(true));
  ASSERT_TRUE(seqs.ok()) << seqs.status();
  EXPECT_EQ((*seqs)[0].token_ids, (std::vector<int32_t>{1, 4, 0}));
  EXPECT_EQ((*seqs)[0].length, 3);
}

TEST(ParseEvalInputTest, ErrorsNameTheJsonPath) {
  auto model = LstmModel(false);
  EXPECT_THAT(ParseEvalInput(R"({"sequences": [[[1, 2], [3]]]})", *model)
                  .status()
                  .message(),
              HasSubstr("sequences[0][1]: expected 2 numbers, got 1"));
  EXPECT_THAT(ParseEvalInput(R"({"sequences": [[[1, "a"]]]})", *model)
                  .status()
                  .message(),
              HasSubstr("sequences[0][0][1]: expected a number"));
  EXPECT_THAT(ParseEvalInput(R"({"sequence": []})", *model).status().message(),
              HasSubstr("sequence: unknown key"));
  EXPECT_THAT(ParseEvalInput("{not json", *model).status().message(),
              HasSubstr("input is not valid JSON"));
  EXPECT_THAT(ParseEvalInput(R"({"sequences": [[[1, 2]]],
                                 "initial_state": []})",
                             *model)
                  .status()
                  .message(),
              HasSubstr("initial_state: expected one entry per sequence (1)"));
  EXPECT_THAT(ParseEvalInput(R"({"sequences": [[1.5]]})", *LstmModel(true))
                  .status()
                  .message(),
              HasSubstr("token ids must be integers"));
}

// Found by fuzz_eval_json (tests/fuzz/regressions/eval_json/): the id was
// cast to int32 unchecked, which is undefined; on x86 1e10 became
// -2147483648 and the error blamed the vocabulary.
TEST(ParseEvalInputTest, RefusesTokenIdsOutsideInt32) {
  for (const char* json :
       {R"({"sequences": [[1e10, 2]]})", R"({"sequences": [[2, 2147483648]]})",
        R"({"sequences": [[-2147483904]]})"}) {
    absl::Status status = ParseEvalInput(json, *LstmModel(true)).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << json;
    EXPECT_THAT(status.message(),
                HasSubstr("token ids must be 32-bit integers; got"))
        << json;
  }
  auto edge =
      ParseEvalInput(R"({"sequences": [[-2147483648]]})", *LstmModel(true));
  ASSERT_TRUE(edge.ok()) << edge.status();
  EXPECT_EQ((*edge)[0].token_ids, std::vector<int32_t>{-2147483648});
}

TEST(FormatEvalOutputTest, NestsArraysLikeTheTensors) {
  SequenceResult r;
  r.output = Tensor{{2, 2}, {1, 2, 3, 4}};
  r.forward = Tensor{{1}, {0.5}};
  r.backward = Tensor{{1}, {-0.25}};
  r.states = {{Tensor{{1}, {9}}}, {Tensor{{2}, {7, 8}}, Tensor{{1}, {6}}}};
  EXPECT_EQ(FormatEvalOutput({r}),
            "{\"results\": [\n  {\"output\": [[1, 2], [3, 4]], \"forward\": "
            "[0.5], \"backward\": [-0.25], \"states\": [[7, 8], [6]]}\n]}\n");
}

}  // namespace
}  // namespace biserve
