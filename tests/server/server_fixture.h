// BundledModelsServerTest: a fixture for tests of a program that talks to a
// real biserve_server, run on the bundled models (models/) for each test.
#pragma once

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/server/server_process.h"

namespace biserve::testing {

class BundledModelsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = ServerProcess::Start(
        {"--model_repository=" BISERVE_SOURCE_DIR "/models"});
    ASSERT_NE(server_, nullptr);
  }
  // The server stops cleanly on SIGTERM: exit code 0.
  void TearDown() override {
    if (server_) {
      EXPECT_EQ(server_->Stop(), 0);
    }
  }

  // The command line of build/bin/`program` --server=<the server> `args`.
  std::string CommandFor(const std::string& program,
                         const std::string& args) const {
    return absl::StrCat(BISERVE_BIN_DIR "/", program,
                        " --server=", server_->address(), " ", args);
  }

  std::unique_ptr<ServerProcess> server_;
};

}  // namespace biserve::testing
