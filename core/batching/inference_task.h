// InferenceTask: one request on its way through a BatchScheduler.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/eval/evaluator.h"
#include "core/model/servable_model.h"

namespace biserve {

struct InferenceTask {
  // The model version that computes the task, pinned when it was accepted.
  ServableModel servable;
  // Borrowed from the request, which the owner of `done` keeps alive until
  // `done` has run (typically `done` owns it).
  std::vector<SequenceInput> sequences;
  EvalOptions options;
  // A task still queued at its deadline is answered DEADLINE_EXCEEDED and
  // never computed.
  absl::Time deadline = absl::InfiniteFuture();
  // Polled just before computing; true drops the task with CANCELLED.
  // Optional; must be callable from any thread.
  std::function<bool()> is_cancelled;
  // Receives the results (one per sequence, in order) or why there are
  // none. Runs exactly once, on a scheduler thread, if and only if Schedule
  // accepted the task. It must not block.
  absl::AnyInvocable<void(absl::StatusOr<std::vector<SequenceResult>>)> done;

  // When the scheduler accepted the task.
  absl::Time enqueue_time;

  // Sum of the sequences' lengths: what the task costs.
  int64_t total_steps() const {
    int64_t steps = 0;
    for (const SequenceInput& s : sequences) steps += s.length;
    return steps;
  }
};

}  // namespace biserve
