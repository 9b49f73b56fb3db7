// BatchScheduler: where accepted requests wait for a thread, and the
// interface that keeps the serving code apart from the batching policy.
//
// Policies: UnbatchedScheduler (each request alone, first come first
// served). Thread-safety: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/batching/inference_task.h"

namespace biserve {

class BatchScheduler {
 public:
  virtual ~BatchScheduler() = default;

  // OK: the scheduler owns the task and runs its `done` exactly once.
  // Otherwise `done` never runs and the caller answers with the status:
  // UNAVAILABLE when the queue is full or the scheduler is draining.
  virtual absl::Status Schedule(std::unique_ptr<InferenceTask> task) = 0;

  // Stops accepting tasks and waits until every accepted task is done, or
  // until `deadline`; then answers those still queued with UNAVAILABLE.
  // Tasks being computed at the deadline finish later, before destruction.
  virtual void Drain(absl::Time deadline) = 0;

  // Tasks accepted and not yet started.
  virtual int64_t QueueDepth() const = 0;
};

}  // namespace biserve
