// Fuzz targets for model files (.pb, .pbtxt, proto3 JSON) and config.pbtxt:
// the bytes are parsed as ReadModelProto and ReadModelConfig parse them,
// then validated as the server does at load, and a model that validates is
// warmed up and evaluated as a served model would be.
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "biserve/v1/config.pb.h"
#include "biserve/v1/model.pb.h"
#include "core/eval/evaluator.h"
#include "core/model/model.h"
#include "google/protobuf/util/json_util.h"
#include "proto/model_codec.h"
#include "proto/model_config_codec.h"
#include "proto/parse_text_proto.h"
#include "tests/fuzz/fuzz_support.h"

namespace biserve {

namespace {

// What the server does with a model that parsed: Model::Create, then the
// warm-up it runs before serving. Beyond that, a ragged batch with every
// output asked for. A model that validates must evaluate: the checks at
// load are all a request relies on.
void LoadAndEvaluate(const v1::Model& proto) {
  absl::StatusOr<std::shared_ptr<const Model>> created =
      Model::Create(ModelSpecFromProto(proto));
  if (!created.ok()) return;
  const Model& model = **created;
  absl::Status warm = WarmUp(model, FuzzPool());
  FuzzCheck(warm.ok(), absl::StrCat("a valid model failed its warm-up: ",
                                    warm.ToString()));

  const std::vector<int64_t> lengths = {3, 1};
  std::vector<std::vector<float>> features;
  std::vector<std::vector<int32_t>> token_ids;
  // The last token id of the vocabulary: the edge of the embedding table.
  const int32_t last_token =
      model.takes_token_ids()
          ? static_cast<int32_t>(model.embedding()->embeddings.rows() - 1)
          : 0;
  for (int64_t length : lengths) {
    features.emplace_back(length * model.input_dim(), 0.5f);
    token_ids.emplace_back(length, last_token);
  }
  std::vector<SequenceInput> batch(lengths.size());
  for (size_t i = 0; i < lengths.size(); ++i) {
    batch[i].length = lengths[i];
    if (model.takes_token_ids()) {
      batch[i].token_ids = token_ids[i];
    } else {
      batch[i].features = features[i];
    }
  }
  const EvalOptions options{.output = true, .directions = true, .states = true};
  absl::StatusOr<std::vector<SequenceResult>> results =
      Evaluate(model, batch, options, FuzzPool());
  FuzzCheck(results.ok(), absl::StrCat("a valid model failed to evaluate: ",
                                       results.status().ToString()));
  FuzzCheck(results->size() == lengths.size(), "one result per sequence");
}

}  // namespace

int FuzzModelBinary(const uint8_t* data, size_t size) {
  v1::Model proto;
  if (!proto.ParseFromArray(data, static_cast<int>(size))) return 0;
  LoadAndEvaluate(proto);
  return 0;
}

int FuzzModelText(const uint8_t* data, size_t size) {
  v1::Model proto;
  if (!ParseTextProto(AsString(data, size), &proto).ok()) return 0;
  LoadAndEvaluate(proto);
  return 0;
}

int FuzzModelJson(const uint8_t* data, size_t size) {
  v1::Model proto;
  if (!google::protobuf::util::JsonStringToMessage(AsString(data, size), &proto)
           .ok()) {
    return 0;
  }
  LoadAndEvaluate(proto);
  return 0;
}

int FuzzModelConfig(const uint8_t* data, size_t size) {
  v1::ModelConfig proto;
  if (!ParseTextProto(AsString(data, size), &proto).ok()) return 0;
  absl::StatusOr<ModelConfig> config = ModelConfigFromProto(proto);
  return 0;
}

}  // namespace biserve
