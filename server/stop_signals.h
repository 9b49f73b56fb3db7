// StopSignals: waiting for SIGTERM or SIGINT, whichever thread the kernel
// delivers them to.
//
// Why not block the signals and sigwait: threads that libraries start
// before main runs (OpenBLAS' pthread build starts its workers when it is
// loaded) keep them unblocked, so once main stops waiting, a second
// SIGTERM during the drain lands on such a thread and its default action
// kills the process, failing every call in flight. Here a handler, run by
// whichever thread receives the signal, only writes the signal's number to
// a pipe; Wait reads it. Signals after the first are absorbed by the same
// handler: the drain already under way ends within --drain_timeout_s.
#pragma once

#include "absl/status/status.h"

namespace biserve {

class StopSignals {
 public:
  // Installs the handler for SIGTERM and SIGINT. Call once, before any
  // thread that should not die of them can receive one.
  static absl::Status Install();

  // Blocks until SIGTERM or SIGINT arrives (or has arrived since Install)
  // and returns which.
  static int Wait();
};

}  // namespace biserve
