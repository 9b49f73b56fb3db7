// ServerProcess: a real biserve_server started by a test on a free loopback
// port, with its log captured, stopped by a real signal.
#pragma once

#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace biserve::testing {

class ServerProcess {
 public:
  // Starts build/bin/biserve_server --host=127.0.0.1 --port=0 plus `args`,
  // and waits (up to 60 s) until its log says it is ready. Null (with a
  // test failure naming the log) if it exits or never gets ready.
  static std::unique_ptr<ServerProcess> Start(
      const std::vector<std::string>& args) {
    static int started = 0;
    const std::string log_path = absl::StrCat(
        ::testing::TempDir(), "/",
        ::testing::UnitTest::GetInstance()->current_test_info()->name(),
        "_server", ++started, ".log");
    std::vector<std::string> argv = {BISERVE_BIN_DIR "/biserve_server",
                                     "--host=127.0.0.1", "--port=0",
                                     "--metrics_port=0"};
    argv.insert(argv.end(), args.begin(), args.end());
    // Created before the fork, so that no log of an earlier run is read.
    std::ofstream(log_path, std::ios::trunc).close();
    const pid_t pid = fork();
    if (pid == 0) {
      // The server dies with the test, and never holds the test's output
      // (CTest waits for every holder of that pipe to close it).
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      FILE* log = fopen(log_path.c_str(), "a");
      if (log != nullptr) {
        dup2(fileno(log), STDERR_FILENO);
        dup2(fileno(log), STDOUT_FILENO);
      }
      std::vector<char*> c_argv;
      for (std::string& a : argv) c_argv.push_back(a.data());
      c_argv.push_back(nullptr);
      execv(c_argv[0], c_argv.data());
      _exit(127);
    }
    auto server =
        std::unique_ptr<ServerProcess>(new ServerProcess(pid, log_path));
    if (!server->WaitForLog(" ready: ", std::chrono::seconds(60))) {
      ADD_FAILURE() << "biserve_server did not get ready; its log:\n"
                    << server->Log();
      return nullptr;
    }
    const std::string log = server->Log();
    const std::string marker = "listening on 127.0.0.1:";
    size_t at = log.find(marker);
    if (at == std::string::npos ||
        !absl::SimpleAtoi(
            log.substr(at + marker.size(),
                       log.find(' ', at + marker.size()) - at - marker.size()),
            &server->port_)) {
      ADD_FAILURE() << "no port in the log:\n" << log;
      return nullptr;
    }
    const std::string metrics_marker = "metrics on 127.0.0.1:";
    at = log.find(metrics_marker);
    if (at != std::string::npos) {
      const size_t from = at + metrics_marker.size();
      (void)absl::SimpleAtoi(log.substr(from, log.find('/', from) - from),
                             &server->metrics_port_);
    }
    return server;
  }

  ~ServerProcess() {
    if (!exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  int port() const { return port_; }
  // The port of /metrics (0 if the log did not name one).
  int metrics_port() const { return metrics_port_; }
  pid_t pid() const { return pid_; }

  // The server's log so far.
  std::string Log() const {
    std::ifstream in(log_path_);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  // Waits until the log contains `text`; false after `timeout`.
  bool WaitForLog(const std::string& text, std::chrono::milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      if (Log().find(text) != std::string::npos) return true;
      if (HasExited()) return Log().find(text) != std::string::npos;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  // Sends `signal` and waits up to `timeout` for the exit; returns the exit
  // code, or -1 (with a test failure) if it did not exit normally in time.
  int Stop(int signal = SIGTERM,
           std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
    kill(pid_, signal);
    return WaitForExit(timeout);
  }

  int WaitForExit(std::chrono::milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (!HasExited() && std::chrono::steady_clock::now() < end) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (!exited_) {
      ADD_FAILURE() << "biserve_server did not exit; its log:\n" << Log();
      return -1;
    }
    if (!WIFEXITED(status_)) {
      ADD_FAILURE() << "biserve_server died with signal " << WTERMSIG(status_)
                    << "; its log:\n"
                    << Log();
      return -1;
    }
    return WEXITSTATUS(status_);
  }

  bool HasExited() {
    if (!exited_ && waitpid(pid_, &status_, WNOHANG) == pid_) exited_ = true;
    return exited_;
  }

 private:
  ServerProcess(pid_t pid, std::string log_path)
      : pid_(pid), log_path_(std::move(log_path)) {}

  const pid_t pid_;
  const std::string log_path_;
  int port_ = 0;
  int metrics_port_ = 0;
  bool exited_ = false;
  int status_ = 0;
};

}  // namespace biserve::testing
