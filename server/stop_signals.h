// StopSignals: waiting for SIGTERM or SIGINT, and surviving the ones that
// come after.
//
// Install, at the top of main, blocks both signals in the calling thread,
// so every thread main starts after it (ours and gRPC's) inherits the block
// and Wait takes them with sigtimedwait. Threads that libraries start before
// main runs (OpenBLAS' pthread build starts its workers when it is loaded)
// do not have them blocked: a signal the kernel hands to one of those
// (typically a second SIGTERM during the drain, when main no longer waits)
// would kill the process with the default action, failing every call in
// flight. A handler absorbs it instead and records it for Wait.
#pragma once

#include "absl/status/status.h"

namespace biserve {

class StopSignals {
 public:
  // Call once, from main, before any thread of ours starts.
  static absl::Status Install();

  // Blocks until SIGTERM or SIGINT arrives (or has arrived since Install)
  // and returns which. Later signals are absorbed.
  static int Wait();
};

}  // namespace biserve
