// MemoryReturner: gives the heap memory that large requests leave free back
// to the system.
//
// The server keeps freed heap memory for reuse (PrepareProcessForEvaluation:
// batch buffers must not be re-faulted per batch), in one glibc arena per
// thread that allocated it. A large request is received and freed on
// whichever gRPC thread read it, so a client sending large messages, honest
// or hostile, would leave each thread's arena holding its own copy of them:
// nine refused 16 MB requests left 35 to 57 MB resident on a 2-core machine
// (9 to 25 MB once returned), more with more threads. After a large request
// is freed the server returns free memory (ReleaseFreeMemory) shortly
// afterwards, once gRPC has dropped the request's bytes, once more an
// interval later (for bytes gRPC dropped late), and at most once per
// interval, so a stream of large requests costs one heap walk per
// interval. Small requests never trigger it: their memory is reused as it
// is.
//
// Thread-safety: Freed may be called from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "core/common/mutex.h"
#include "core/common/process_tuning.h"

namespace biserve {

class MemoryReturner {
 public:
  struct Options {
    // A request holding at least this many bytes (serialized plus parsed)
    // leaves a return behind it.
    int64_t large_request_bytes = int64_t{1} << 20;
    // Time for gRPC to free the request's own bytes after the server lets
    // go of it.
    absl::Duration settle = absl::Milliseconds(100);
    // At most one return per interval.
    absl::Duration min_interval = absl::Seconds(1);
    // What a return does; tests count the calls.
    std::function<void()> release = ReleaseFreeMemory;
  };

  explicit MemoryReturner(Options options);
  ~MemoryReturner();  // stops the returning thread
  MemoryReturner(const MemoryReturner&) = delete;
  MemoryReturner& operator=(const MemoryReturner&) = delete;

  // The server let go of a request that held `bytes`.
  void Freed(int64_t bytes);

 private:
  // Returns free memory whenever a large request was freed, until stopped.
  void Run();
  // Waits for a large request (or, if `*follow_up`, not), then for the
  // settle time and `earliest`; sets `*follow_up` if a request was waited
  // for. False once stopping.
  bool WaitForReturn(absl::Time earliest, bool* follow_up);

  const Options options_;
  Mutex mu_;
  CondVar changed_;
  bool pending_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace biserve
