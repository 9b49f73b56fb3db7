// The answers of tasks a scheduler accepted but does not compute: dropped
// because their client went away or their deadline passed, or abandoned
// because the scheduler shut down. Both schedulers answer them here, so
// that clients see the same codes and messages whichever one queued them.
#pragma once

#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/batching/inference_task.h"
#include "core/batching/serving_observer.h"

namespace biserve {

// Whether `task` may still be computed at `now`: DEADLINE_EXCEEDED if its
// deadline has passed (saying how long it waited), else CANCELLED if its
// client went away (is_cancelled is asked only then), else OK.
absl::Status UnrunStatus(const InferenceTask& task, absl::Time now);

// Answers each of `tasks`, still counted as queued, with UNAVAILABLE (the
// scheduler shut down before computing them), telling `observer` (may be
// null) that they left the queue.
void AnswerAbandoned(std::vector<std::unique_ptr<InferenceTask>>& tasks,
                     ServingObserver* observer);

}  // namespace biserve
