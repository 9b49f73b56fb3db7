// Fuzz target for biserve_eval's JSON input: parsed for both bundled models
// (token ids for brackets, 8 features per step for example), and what
// parses is evaluated and printed as biserve_eval does.
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/eval/evaluator.h"
#include "core/model/model.h"
#include "proto/eval_json.h"
#include "tests/fuzz/fuzz_support.h"

namespace biserve {
namespace {

void EvalFor(const std::string& json, const Model& model) {
  absl::StatusOr<std::vector<OwnedSequence>> sequences =
      ParseEvalInput(json, model);
  if (!sequences.ok()) return;
  std::vector<SequenceInput> batch;
  for (const OwnedSequence& s : *sequences) batch.push_back(s.View());
  // biserve_eval leaves the remaining checks to Evaluate: it may refuse.
  absl::StatusOr<std::vector<SequenceResult>> results = Evaluate(
      model, batch, {.output = true, .directions = true, .states = true},
      FuzzPool());
  if (results.ok()) FormatEvalOutput(*results);
}

}  // namespace

int FuzzEvalJson(const uint8_t* data, size_t size) {
  const std::string json = AsString(data, size);
  EvalFor(json, BracketsModel());
  EvalFor(json, ExampleModel());
  return 0;
}

}  // namespace biserve
