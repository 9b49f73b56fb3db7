#include "server/stop_signals.h"

#include <errno.h>
#include <signal.h>
#include <time.h>

#include <atomic>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace biserve {
namespace {

// The signal a handler absorbed, 0 if none. A signal handler can reach
// nothing but globals, so this is one; a lock-free atomic is safe to store
// from a handler.
std::atomic<int> absorbed_signal{0};
static_assert(std::atomic<int>::is_always_lock_free);

void AbsorbStopSignal(int signal) {
  int expected = 0;
  absorbed_signal.compare_exchange_strong(expected, signal);
}

sigset_t StopSignalSet() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  return signals;
}

}  // namespace

absl::Status StopSignals::Install() {
  const sigset_t signals = StopSignalSet();
  if (int error = pthread_sigmask(SIG_BLOCK, &signals, nullptr); error != 0) {
    return absl::InternalError(
        absl::StrCat("cannot block SIGTERM and SIGINT: ", strerror(error)));
  }
  struct sigaction action = {};
  action.sa_handler = AbsorbStopSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  for (int signal : {SIGTERM, SIGINT}) {
    if (sigaction(signal, &action, nullptr) != 0) {
      return absl::InternalError(
          absl::StrCat("cannot handle signal ", signal, ": ", strerror(errno)));
    }
  }
  return absl::OkStatus();
}

int StopSignals::Wait() {
  const sigset_t signals = StopSignalSet();
  // A signal absorbed by another thread's handler is seen within this
  // period. Waiting on a pipe the handler writes would be immediate, but
  // ThreadSanitizer defers handlers to the next intercepted call, which a
  // thread blocked in read() never makes.
  const timespec period = {.tv_sec = 0, .tv_nsec = 100'000'000};
  while (true) {
    const int signal = sigtimedwait(&signals, nullptr, &period);
    if (signal > 0) return signal;
    if (int absorbed = absorbed_signal.load(); absorbed != 0) return absorbed;
  }
}

}  // namespace biserve
