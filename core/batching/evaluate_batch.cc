#include "core/batching/evaluate_batch.h"

#include <utility>

namespace biserve {
namespace {

// One Evaluate call for every task's sequences, computing the union of
// what the tasks ask for.
absl::StatusOr<std::vector<SequenceResult>> EvaluateMerged(const Batch& batch,
                                                           ThreadPool& pool,
                                                           EvalStats* stats) {
  std::vector<SequenceInput> sequences;
  EvalOptions options = batch[0]->options;
  for (const auto& task : batch) {
    sequences.insert(sequences.end(), task->sequences.begin(),
                     task->sequences.end());
    options.output |= task->options.output;
    options.directions |= task->options.directions;
    options.states |= task->options.states;
    options.allow_non_finite |= task->options.allow_non_finite;
  }
  return Evaluate(*batch[0]->servable.model, sequences, options, pool, stats);
}

// `result` with only what `options` asked for (the batch computed the
// union). With merge mode none the directions are the model's outputs, so
// they stay (`directions_always`).
SequenceResult OnlyAskedFor(SequenceResult result, const EvalOptions& options,
                            bool directions_always) {
  if (!options.output) result.output = Tensor();
  if (!options.directions && !directions_always) {
    result.forward = Tensor();
    result.backward = Tensor();
  }
  if (!options.states) result.states.clear();
  return result;
}

}  // namespace

void EvaluateBatch(Batch& batch, ThreadPool& pool, EvalStats* stats) {
  // One request alone needs no merging.
  if (batch.size() == 1) {
    InferenceTask& task = *batch[0];
    task.done(Evaluate(*task.servable.model, task.sequences, task.options, pool,
                       stats));
    return;
  }
  absl::StatusOr<std::vector<SequenceResult>> results =
      EvaluateMerged(batch, pool, stats);
  if (!results.ok()) {
    for (auto& task : batch) task->done(results.status());
    return;
  }
  const Model& model = *batch[0]->servable.model;
  const bool directions_always =
      model.bidirectional(model.last_bidirectional()).merge_mode ==
      MergeMode::kNone;
  size_t next = 0;
  for (auto& task : batch) {
    std::vector<SequenceResult> own;
    own.reserve(task->sequences.size());
    for (size_t i = 0; i < task->sequences.size(); ++i) {
      own.push_back(OnlyAskedFor(std::move((*results)[next++]), task->options,
                                 directions_always));
    }
    task->done(std::move(own));
  }
}

}  // namespace biserve
