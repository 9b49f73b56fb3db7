#include "importers/isolated_import.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

extern char** environ;

namespace biserve {
namespace {

// The helper writes its outcome to this descriptor (not stdout: a library
// could print there).
constexpr int kOutcomeFd = 3;

// The most the parent reads: the model's weights as floats, from a file
// that may store them as float16 or compressed, and never more than
// protobuf parses.
int64_t MaxOutcomeBytes(int64_t file_bytes) {
  return std::min<int64_t>((int64_t{64} << 20) + 16 * file_bytes,
                           (int64_t{2} << 30) - 1);
}

absl::StatusOr<std::string> HelperPath(const IsolatedImportOptions& options) {
  if (!options.helper_path.empty()) return options.helper_path;
  std::error_code error;
  const std::filesystem::path self =
      std::filesystem::read_symlink("/proc/self/exe", error);
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot find the running executable to start ",
                     kKerasImportHelperName, " beside it: ", error.message()));
  }
  return (self.parent_path() / std::string(kKerasImportHelperName)).string();
}

// A started helper: its pid and the read end of its outcome pipe.
struct Helper {
  pid_t pid = -1;
  int outcome_fd = -1;
};

// Starts `argv` with the pipe's write end as descriptor 3, every signal at
// its default and none blocked (the server blocks SIGTERM and SIGINT).
absl::StatusOr<Helper> Spawn(const std::vector<std::string>& argv,
                             const std::vector<std::string>& env) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return absl::ResourceExhaustedError(
        absl::StrCat("pipe: ", std::strerror(errno)));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], kOutcomeFd);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> c_argv, c_env;
  for (const std::string& a : argv)
    c_argv.push_back(const_cast<char*>(a.c_str()));
  for (const std::string& e : env)
    c_env.push_back(const_cast<char*>(e.c_str()));
  c_argv.push_back(nullptr);
  c_env.push_back(nullptr);
  Helper helper;
  const int error = posix_spawn(&helper.pid, argv[0].c_str(), &actions, &attr,
                                c_argv.data(), c_env.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(fds[1]);
  if (error != 0) {
    close(fds[0]);
    return absl::FailedPreconditionError(
        absl::StrCat("cannot start ", argv[0], ": ", std::strerror(error)));
  }
  helper.outcome_fd = fds[0];
  return helper;
}

enum class ReadEnd { kEof, kTimedOut, kTooLarge, kError };

// Reads `fd` to its end, at most `max_bytes`, until `deadline`.
ReadEnd ReadOutcome(int fd, int64_t max_bytes, absl::Time deadline,
                    std::string& bytes) {
  char chunk[1 << 16];
  for (;;) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return ReadEnd::kTimedOut;
    pollfd p = {fd, POLLIN, 0};
    const int ready = poll(&p, 1,
                           static_cast<int>(absl::ToInt64Milliseconds(
                               left + absl::Milliseconds(1))));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return ReadEnd::kError;
    if (ready == 0) continue;  // the deadline is checked above
    const ssize_t n = read(fd, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ReadEnd::kError;
    if (n == 0) return ReadEnd::kEof;
    if (static_cast<int64_t>(bytes.size()) + n > max_bytes) {
      return ReadEnd::kTooLarge;
    }
    bytes.append(chunk, static_cast<size_t>(n));
  }
}

// The helper's wait status, once it exited.
int Reap(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

// What a helper that gave no outcome did to the file, as a status.
absl::Status HelperFailure(const std::string& path, ReadEnd end, int status,
                           const IsolatedImportOptions& options,
                           int64_t max_bytes) {
  const std::string what = absl::StrCat(path, ": ");
  switch (end) {
    case ReadEnd::kTimedOut:
      return absl::DeadlineExceededError(absl::StrCat(
          what, "reading the file took over ",
          absl::FormatDuration(options.timeout),
          " (the HDF5 reader may loop forever on a damaged file); stopped"));
    case ReadEnd::kTooLarge:
      return absl::ResourceExhaustedError(absl::StrCat(
          what, "the import wrote more than ", max_bytes,
          " bytes, more than this file's model can need: the file is damaged"));
    default:
      break;
  }
  if (WIFSIGNALED(status)) {
    const int signal = WTERMSIG(status);
    if (signal == SIGKILL) {
      return absl::ResourceExhaustedError(absl::StrCat(
          what,
          "the import process was killed (signal 9), most likely out "
          "of memory: the file is damaged or too large"));
    }
    return absl::InvalidArgumentError(absl::StrCat(
        what, "the HDF5 reader crashed on this file (signal ", signal, ", ",
        strsignal(signal), "): the file is damaged"));
  }
  return absl::InternalError(absl::StrCat(
      what, "the import process ", kKerasImportHelperName, " exited with ",
      WIFEXITED(status) ? WEXITSTATUS(status) : status, " without a result"));
}

std::vector<std::string> HelperEnvironment(
    const IsolatedImportOptions& options) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "BISERVE_KERAS_IMPORT_FAULT=", 27) != 0) {
      env.emplace_back(*e);
    }
  }
  if (!options.test_fault.empty()) {
    env.push_back(
        absl::StrCat("BISERVE_KERAS_IMPORT_FAULT=", options.test_fault));
  }
  return env;
}

}  // namespace

std::string EncodeImportOutcome(const absl::StatusOr<v1::Model>& outcome) {
  if (outcome.ok()) return absl::StrCat("0\n", outcome->SerializeAsString());
  return absl::StrCat(static_cast<int>(outcome.status().code()), "\n",
                      outcome.status().message());
}

absl::StatusOr<v1::Model> DecodeImportOutcome(const std::string& path,
                                              absl::string_view bytes) {
  const size_t newline = bytes.find('\n');
  int code = -1;
  if (newline == absl::string_view::npos ||
      !absl::SimpleAtoi(bytes.substr(0, newline), &code) || code < 0 ||
      code > static_cast<int>(absl::StatusCode::kUnauthenticated)) {
    return absl::InternalError(absl::StrCat(
        path, ": the import process wrote no result it could read"));
  }
  const absl::string_view body = bytes.substr(newline + 1);
  if (code != 0) return absl::Status(static_cast<absl::StatusCode>(code), body);
  v1::Model model;
  if (!model.ParseFromArray(body.data(), static_cast<int>(body.size()))) {
    return absl::InternalError(
        absl::StrCat(path,
                     ": the import process wrote a model that does "
                     "not parse"));
  }
  return model;
}

absl::StatusOr<v1::Model> ImportKerasFileIsolated(
    const std::string& path, const KerasImportOptions& import_options,
    const IsolatedImportOptions& options) {
  absl::StatusOr<std::string> helper_path = HelperPath(options);
  if (!helper_path.ok()) return helper_path.status();
  std::error_code error;
  const uintmax_t size = std::filesystem::file_size(path, error);
  const int64_t file_bytes = error ? 0 : static_cast<int64_t>(size);
  const int64_t address_space =
      options.base_address_space_bytes + 8 * file_bytes;
  absl::StatusOr<Helper> helper =
      Spawn({*helper_path, path, import_options.model_name,
             absl::StrCat(address_space)},
            HelperEnvironment(options));
  if (!helper.ok()) return helper.status();
  const int64_t max_bytes = MaxOutcomeBytes(file_bytes);
  std::string bytes;
  const ReadEnd end = ReadOutcome(helper->outcome_fd, max_bytes,
                                  absl::Now() + options.timeout, bytes);
  close(helper->outcome_fd);
  if (end != ReadEnd::kEof) kill(helper->pid, SIGKILL);
  const int status = Reap(helper->pid);
  if (end == ReadEnd::kEof && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    return DecodeImportOutcome(path, bytes);
  }
  return HelperFailure(path, end, status, options, max_bytes);
}

}  // namespace biserve
