// ServingObserver: what the schedulers report as they work, for metrics.
//
// core/ knows nothing of Prometheus; server/metrics.h implements this.
// Calls come from scheduler threads, outside the scheduler's lock, and must
// be cheap (increment, observe) and thread-safe: the ServableModel carries
// its version's metric handles (ServableModel::metrics), so an observer
// needs no lookup.
#pragma once

#include <cstdint>

#include "absl/time/time.h"
#include "core/eval/evaluator.h"
#include "core/model/servable_model.h"

namespace biserve {

class ServingObserver {
 public:
  virtual ~ServingObserver() = default;

  // A task left its queue after `waited`, to be computed or dropped.
  virtual void TaskDequeued(const ServableModel& model, absl::Duration waited) {
  }

  // One batch of `requests` requests was computed in `elapsed`.
  virtual void BatchComputed(const ServableModel& model, int requests,
                             const EvalStats& stats, absl::Duration elapsed) {}

  // Requests waiting for `model` (all its versions) changed by `delta`.
  virtual void QueueDepthChanged(const ServableModel& model, int delta) {}
};

}  // namespace biserve
