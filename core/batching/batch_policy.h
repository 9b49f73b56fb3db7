// The batching policy as free functions over a queue snapshot: which queue
// runs next, and which of its tasks form the batch. No threads and no clock
// here, so tests can check each decision exactly.
//
// Policy (see README, "Batching"):
// - A queue is ready when its tasks fill a batch (max_batch_size sequences
//   or max_batch_steps steps), when its oldest task has waited
//   max_queue_delay_us, or when no batch is running at all (an idle pool
//   never waits for a batch to grow), or when the scheduler is draining.
// - Among ready queues, the one whose oldest task has waited longest goes
//   first, so a busy model cannot starve a quiet one.
// - A batch always takes the oldest task, then every task whose delay has
//   run out (oldest first), then, when the queue holds more than one batch,
//   the tasks closest in length to the oldest, so that the sequences of a
//   batch end at similar steps and the late steps keep full GEMMs. Within
//   the caps; a task larger than the caps on its own runs alone.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/time/time.h"
#include "absl/types/span.h"
#include "core/model/model_config.h"

namespace biserve {

// What the policy needs to know of one queued task.
struct QueuedTaskInfo {
  absl::Time enqueued;
  int sequences = 0;
  int64_t steps = 0;  // sum of its sequences' lengths
};

// The size of a batch being formed.
struct BatchSize {
  int sequences = 0;
  int64_t steps = 0;
};

// The one rule for what a batch may hold: `task` joins a batch of `size`
// if the result stays within max_batch_size and max_batch_steps, or the
// batch is empty (a task over the caps runs alone).
bool FitsInBatch(const BatchSize& size, const QueuedTaskInfo& task,
                 const BatchingOptions& options);

// Whether the tasks of `queue` (in arrival order) fill a whole batch.
bool FillsBatch(absl::Span<const QueuedTaskInfo> queue,
                const BatchingOptions& options);

// Whether `queue` should run now. `idle`: no batch is running anywhere.
bool QueueReady(absl::Span<const QueuedTaskInfo> queue,
                const BatchingOptions& options, absl::Time now, bool idle);

// When `queue`'s oldest task reaches its delay bound.
absl::Time QueueDeadline(absl::Span<const QueuedTaskInfo> queue,
                         const BatchingOptions& options);

// Indices into `queue` (arrival order) of the tasks of the next batch,
// ascending. REQUIRES: `queue` is not empty.
std::vector<size_t> FormBatch(absl::Span<const QueuedTaskInfo> queue,
                              const BatchingOptions& options, absl::Time now);

}  // namespace biserve
