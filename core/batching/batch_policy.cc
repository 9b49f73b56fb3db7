#include "core/batching/batch_policy.h"

#include <algorithm>
#include <cmath>

namespace biserve {
namespace {

absl::Duration Delay(const BatchingOptions& options) {
  return absl::Microseconds(options.max_queue_delay_us);
}

}  // namespace

bool FitsInBatch(const BatchSize& size, const QueuedTaskInfo& task,
                 const BatchingOptions& options) {
  if (size.sequences == 0) return true;
  return size.sequences + task.sequences <= options.max_batch_size &&
         size.steps + task.steps <= options.max_batch_steps;
}

bool FillsBatch(absl::Span<const QueuedTaskInfo> queue,
                const BatchingOptions& options) {
  BatchSize size;
  for (const QueuedTaskInfo& task : queue) {
    if (!FitsInBatch(size, task, options)) return true;  // one more spills
    size.sequences += task.sequences;
    size.steps += task.steps;
  }
  return size.sequences >= options.max_batch_size ||
         size.steps >= options.max_batch_steps;
}

bool QueueReady(absl::Span<const QueuedTaskInfo> queue,
                const BatchingOptions& options, absl::Time now, bool idle) {
  if (queue.empty()) return false;
  return idle || now >= QueueDeadline(queue, options) ||
         FillsBatch(queue, options);
}

absl::Time QueueDeadline(absl::Span<const QueuedTaskInfo> queue,
                         const BatchingOptions& options) {
  if (queue.empty()) return absl::InfiniteFuture();
  return queue.front().enqueued + Delay(options);
}

std::vector<size_t> FormBatch(absl::Span<const QueuedTaskInfo> queue,
                              const BatchingOptions& options, absl::Time now) {
  std::vector<size_t> chosen = {0};
  BatchSize size{queue[0].sequences, queue[0].steps};
  std::vector<bool> taken(queue.size(), false);
  taken[0] = true;
  auto take = [&](size_t i) {
    if (taken[i] || !FitsInBatch(size, queue[i], options)) return;
    taken[i] = true;
    chosen.push_back(i);
    size.sequences += queue[i].sequences;
    size.steps += queue[i].steps;
  };
  // Every task whose delay has run out, oldest first: grouping by length
  // never holds one back.
  const absl::Time expired_before = now - Delay(options);
  for (size_t i = 1; i < queue.size() && queue[i].enqueued <= expired_before;
       ++i) {
    take(i);
  }
  if (FillsBatch(queue, options)) {
    // More than one batch waits: the rest by similar mean sequence length.
    auto mean = [&](size_t i) {
      return static_cast<double>(queue[i].steps) /
             std::max(1, queue[i].sequences);
    };
    const double anchor = mean(0);
    std::vector<size_t> order;
    for (size_t i = 1; i < queue.size(); ++i) {
      if (!taken[i]) order.push_back(i);
    }
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return std::abs(mean(a) - anchor) < std::abs(mean(b) - anchor);
    });
    for (size_t i : order) take(i);
  } else {
    for (size_t i = 1; i < queue.size(); ++i) take(i);
  }
  std::sort(chosen.begin(), chosen.end());
  return chosen;
}

}  // namespace biserve
