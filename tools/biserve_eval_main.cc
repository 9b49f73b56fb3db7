// biserve_eval: evaluates a model file on sequences from a JSON file and
// prints the results as JSON, so a model can be checked before it is served.
//
//   biserve_eval --model models/example/1/model.pbtxt --input in.json
//       [--outputs merged|directions|both] [--states] [--precision BF16]
#include <iostream>
#include <iterator>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/common/process_tuning.h"
#include "core/common/thread_pool.h"
#include "core/eval/evaluator.h"
#include "core/kernels/precision.h"
#include "importers/model_file.h"
#include "proto/eval_json.h"
#include "proto/input_file.h"

ABSL_FLAG(std::string, model, "",
          "Model file: binary .pb, text .pbtxt or JSON .json, an ONNX "
          ".onnx from torch.onnx.export, or Keras' .keras or .h5 from "
          "model.save (imported as the server would).");
ABSL_FLAG(biserve::InputFile, input, {"-"},
          "JSON input file, or - for standard input.");
ABSL_FLAG(std::string, outputs, "merged",
          "merged (the model's output), directions (the last Bidirectional "
          "layer's forward and backward outputs) or both.");
ABSL_FLAG(bool, states, false,
          "Also print the last Bidirectional layer's final states.");
ABSL_FLAG(int, threads, 2, "Evaluation threads.");
ABSL_FLAG(biserve::Precision, precision, biserve::Precision::kFp32,
          "FP32 or BF16 (weights in bfloat16, float32 accumulation), as "
          "config.pbtxt's precision. Where BF16 cannot run, FP32 is used and "
          "a line on stderr says why.");

namespace biserve {
namespace {

absl::Status Run() {
  const std::string model_path = absl::GetFlag(FLAGS_model);
  if (model_path.empty()) {
    return absl::InvalidArgumentError("--model is required");
  }
  EvalOptions options;
  const std::string outputs = absl::GetFlag(FLAGS_outputs);
  if (outputs == "merged") {
    options.output = true;
  } else if (outputs == "directions") {
    options.output = false;
    options.directions = true;
  } else if (outputs == "both") {
    options.directions = true;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "--outputs must be merged, directions or both; was '", outputs, "'"));
  }
  options.states = absl::GetFlag(FLAGS_states);

  absl::StatusOr<std::shared_ptr<const Model>> model =
      LoadAnyModelFile(model_path, absl::GetFlag(FLAGS_precision));
  if (!model.ok()) return model.status();
  if (const std::string fallback = PrecisionFallbackReason(
          (*model)->requested_precision(), (*model)->precision());
      !fallback.empty()) {
    std::cerr << "biserve_eval: " << fallback << "\n";
  }
  absl::StatusOr<std::string> json = ReadInput(absl::GetFlag(FLAGS_input));
  if (!json.ok()) return json.status();
  absl::StatusOr<std::vector<OwnedSequence>> sequences =
      ParseEvalInput(*json, **model);
  if (!sequences.ok()) return sequences.status();
  std::vector<SequenceInput> batch;
  for (const OwnedSequence& seq : *sequences) batch.push_back(seq.View());

  absl::StatusOr<std::unique_ptr<ThreadPool>> pool =
      ThreadPool::Create({.num_threads = absl::GetFlag(FLAGS_threads)});
  if (!pool.ok()) return pool.status();
  absl::StatusOr<std::vector<SequenceResult>> results =
      Evaluate(**model, batch, options, **pool);
  if (!results.ok()) return results.status();
  std::cout << FormatEvalOutput(*results);
  return absl::OkStatus();
}

}  // namespace
}  // namespace biserve

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Evaluates a biserve model locally and prints JSON.\n"
      "  biserve_eval --model FILE --input FILE.json "
      "[--outputs merged|directions|both] [--states]");
  biserve::PrepareProcessForEvaluation();
  absl::ParseCommandLine(argc, argv);
  absl::Status status = biserve::Run();
  if (!status.ok()) {
    std::cerr << "biserve_eval: " << status.message() << "\n";
    return 1;
  }
  return 0;
}
