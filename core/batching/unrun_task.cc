#include "core/batching/unrun_task.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace biserve {

absl::Status UnrunStatus(const InferenceTask& task, absl::Time now) {
  if (now >= task.deadline) {
    return absl::DeadlineExceededError(absl::StrCat(
        "the deadline expired after ",
        absl::ToInt64Microseconds(now - task.enqueue_time) / 1000.0,
        " ms in the queue; the request was not computed"));
  }
  if (task.is_cancelled && task.is_cancelled()) {
    return absl::CancelledError(
        "the request was cancelled before it was computed");
  }
  return absl::OkStatus();
}

void AnswerAbandoned(std::vector<std::unique_ptr<InferenceTask>>& tasks,
                     ServingObserver* observer) {
  for (auto& task : tasks) {
    if (observer != nullptr) observer->QueueDepthChanged(task->servable, -1);
    task->done(absl::UnavailableError(
        "the server shut down before this request was computed; retry on "
        "another replica"));
  }
}

}  // namespace biserve
