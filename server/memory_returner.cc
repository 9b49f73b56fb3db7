#include "server/memory_returner.h"

#include <algorithm>
#include <utility>

#include "core/common/thread_name.h"

namespace biserve {

MemoryReturner::MemoryReturner(Options options) : options_(std::move(options)) {
  thread_ = std::thread([this] {
    SetCurrentThreadName("biserve-memret");
    Run();
  });
}

MemoryReturner::~MemoryReturner() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  changed_.SignalAll();
  thread_.join();
}

void MemoryReturner::Freed(int64_t bytes) {
  if (bytes < options_.large_request_bytes) return;
  {
    MutexLock lock(&mu_);
    if (pending_) return;
    pending_ = true;
  }
  changed_.Signal();
}

void MemoryReturner::Run() {
  absl::Time earliest = absl::InfinitePast();
  bool follow_up = false;
  while (WaitForReturn(earliest, &follow_up)) {
    options_.release();
    earliest = absl::Now() + options_.min_interval;
  }
}

bool MemoryReturner::WaitForReturn(absl::Time earliest, bool* follow_up) {
  MutexLock lock(&mu_);
  while (!pending_ && !*follow_up && !stopping_) changed_.Wait(&mu_);
  const absl::Time at =
      pending_ ? std::max(absl::Now() + options_.settle, earliest) : earliest;
  bool timed_out = false;
  while (!stopping_ && !timed_out) {
    timed_out = changed_.WaitWithDeadline(&mu_, at);
  }
  // gRPC may free a request's bytes later than the settle time (a loaded
  // machine): a return for requests gets one more an interval later.
  *follow_up = pending_;
  pending_ = false;
  return !stopping_;
}

}  // namespace biserve
