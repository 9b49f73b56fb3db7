// EvaluateBatch: computes the tasks of one batch as one packed Evaluate
// call and gives each task its own results.
#pragma once

#include <memory>
#include <vector>

#include "core/batching/inference_task.h"
#include "core/common/thread_pool.h"
#include "core/eval/evaluator.h"

namespace biserve {

// The tasks of one batch, all of the same model version.
using Batch = std::vector<std::unique_ptr<InferenceTask>>;

// Evaluates `batch` as one packed Evaluate call and answers each task with
// its own sequences' results (holding only what it asked for). A failure
// answers every task with it.
// `stats`, when given, receives what the evaluation computed.
void EvaluateBatch(Batch& batch, ThreadPool& pool, EvalStats* stats = nullptr);

}  // namespace biserve
