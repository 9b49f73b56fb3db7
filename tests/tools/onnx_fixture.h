// The ONNX fixtures the tool tests run (tests/onnx/fixtures/, written by
// real PyTorch; see tests/onnx/). Until they are generated the tests that
// need one skip.
#pragma once

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

namespace biserve::testing {

// The first (by name) tests/onnx/fixtures/*.onnx whose name contains
// `part` and none of `unless`, or "" if there is none.
inline std::string FindOnnxFixture(
    const std::string& part, const std::vector<std::string>& unless = {}) {
  const std::filesystem::path dir =
      std::filesystem::path(BISERVE_SOURCE_DIR) / "tests/onnx/fixtures";
  std::error_code error;
  std::vector<std::string> found;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    const std::string name = entry.path().filename().string();
    if (entry.path().extension() != ".onnx" ||
        name.find(part) == std::string::npos) {
      continue;
    }
    if (std::none_of(unless.begin(), unless.end(), [&](const std::string& u) {
          return name.find(u) != std::string::npos;
        })) {
      found.push_back(entry.path().string());
    }
  }
  std::sort(found.begin(), found.end());
  return found.empty() ? "" : found.front();
}

}  // namespace biserve::testing
