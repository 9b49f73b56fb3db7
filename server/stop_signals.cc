#include "server/stop_signals.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"

namespace biserve {
namespace {

// The pipe the handler writes to. A signal handler can reach nothing but
// globals, so this is one; it is written once, by Install, before the
// handler can run.
int signal_pipe[2] = {-1, -1};

void OnStopSignal(int signal) {
  const int saved_errno = errno;
  const unsigned char byte = static_cast<unsigned char>(signal);
  // Non-blocking: should the pipe ever be full, the signal is already
  // recorded in it.
  [[maybe_unused]] ssize_t written = write(signal_pipe[1], &byte, 1);
  errno = saved_errno;
}

}  // namespace

absl::Status StopSignals::Install() {
  if (pipe2(signal_pipe, O_CLOEXEC) != 0 ||
      fcntl(signal_pipe[1], F_SETFL, O_NONBLOCK) != 0) {
    return absl::InternalError(
        absl::StrCat("cannot create the signal pipe: ", strerror(errno)));
  }
  struct sigaction action = {};
  action.sa_handler = OnStopSignal;
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
  unsigned char byte = 0;
  while (true) {
    ssize_t n = read(signal_pipe[0], &byte, 1);
    if (n == 1) return byte;
    if (n < 0 && errno == EINTR) continue;
    // The pipe cannot close while the process lives; answer as SIGTERM
    // rather than spin should it ever fail.
    return SIGTERM;
  }
}

}  // namespace biserve
