// Running the project's programs as a user would, from tests: a real
// process, real files, real exit codes.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace biserve::testing {

struct CommandResult {
  int exit_code;
  std::string out;  // stdout and stderr together
};

// Runs `command` through the shell and collects its output.
inline CommandResult RunCommand(const std::string& command) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  std::string out;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
    out.append(buffer, n);
  }
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// A path in the test temporary directory named after the running test, since
// CTest runs tests in parallel processes that share that directory.
inline std::string TestPath(const std::string& name) {
  return ::testing::TempDir() + "/" +
         ::testing::UnitTest::GetInstance()->current_test_info()->name() + "_" +
         name;
}

// Writes `content` to TestPath(name) and returns the path.
inline std::string WriteTestFile(const std::string& name,
                                 const std::string& content) {
  const std::string path = TestPath(name);
  std::ofstream(path) << content;
  return path;
}

}  // namespace biserve::testing
