// Replays every committed seed and regression input of every fuzz target
// (tests/fuzz/corpus/<target>/, tests/fuzz/regressions/<target>/) through
// the target's own body, in the ordinary build: an input that once crashed
// a target, or breaks one of its invariants again, fails here (the body
// aborts, naming the broken invariant; the log names the input first).
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/fuzz/fuzz_target.h"

namespace biserve {

// Names the parameter in test names and failure messages (found by ADL).
void PrintTo(const FuzzTarget& target, std::ostream* os) { *os << target.name; }

namespace {

const std::filesystem::path kFuzzDir =
    std::filesystem::path(BISERVE_SOURCE_DIR) / "tests" / "fuzz";

std::vector<std::filesystem::path> FilesIn(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files;
  if (!std::filesystem::is_directory(dir)) return files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.is_regular_file()) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<std::filesystem::path> FilesInFolders(
    const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> folders;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.is_directory()) folders.push_back(entry.path());
  }
  std::sort(folders.begin(), folders.end());
  return folders;
}

std::string ReadAll(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void Replay(const FuzzTarget& target, const std::filesystem::path& file) {
  // Printed before the run: an abort inside ends the process at once.
  std::cerr << "replaying " << target.name << " "
            << std::filesystem::relative(file, kFuzzDir).string() << "\n";
  const std::string data = ReadAll(file);
  EXPECT_EQ(
      target.run(reinterpret_cast<const uint8_t*>(data.data()), data.size()),
      0);
}

class FuzzReplayTest : public ::testing::TestWithParam<FuzzTarget> {};

TEST_P(FuzzReplayTest, EverySeedRunsCleanly) {
  const std::vector<std::filesystem::path> seeds =
      FilesIn(kFuzzDir / "corpus" / GetParam().name);
  // An empty or misplaced corpus would make this test pass vacuously.
  ASSERT_GE(seeds.size(), 5u) << "too few seeds for " << GetParam().name;
  for (const auto& file : seeds) Replay(GetParam(), file);
}

INSTANTIATE_TEST_SUITE_P(AllTargets, FuzzReplayTest,
                         ::testing::ValuesIn(AllFuzzTargets().begin(),
                                             AllFuzzTargets().end()),
                         [](const ::testing::TestParamInfo<FuzzTarget>& info) {
                           return std::string(info.param.name);
                         });

// What each fuzzer found, kept: regressions/<target>/<what it broke>.
TEST(FuzzRegressionTest, EveryRegressionInputRunsCleanly) {
  int replayed = 0;
  for (const auto& folder : FilesInFolders(kFuzzDir / "regressions")) {
    const FuzzTarget* target = FindFuzzTarget(folder.filename().string());
    ASSERT_NE(target, nullptr) << folder << " belongs to no target";
    for (const auto& file : FilesIn(folder)) {
      Replay(*target, file);
      ++replayed;
    }
  }
  EXPECT_GT(replayed, 0) << "no regression inputs found under " << kFuzzDir;
}

// Every target has a corpus folder and every corpus folder a target: a
// target added without seeds, or a folder left behind, shows here.
TEST(FuzzCorpusTest, FoldersMatchTargets) {
  for (const char* kind : {"corpus", "regressions"}) {
    for (const auto& entry :
         std::filesystem::directory_iterator(kFuzzDir / kind)) {
      EXPECT_NE(FindFuzzTarget(entry.path().filename().string()), nullptr)
          << kind << "/" << entry.path().filename() << " belongs to no target";
    }
  }
  for (const FuzzTarget& target : AllFuzzTargets()) {
    EXPECT_TRUE(
        std::filesystem::is_directory(kFuzzDir / "corpus" / target.name))
        << target.name;
  }
}

}  // namespace
}  // namespace biserve
