#include "core/serving/repository_watcher.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "biserve/v1/model.pb.h"
#include "core/common/thread_pool.h"
#include "core/eval/evaluator.h"
#include "core/model/model.h"
#include "core/serving/model_registry.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/model_codec.h"
#include "proto/model_config_codec.h"
#include "tests/support/fake_clock.h"
#include "tests/support/notification.h"
#include "tests/support/random_model.h"
#include "tests/support/registry_test_util.h"

namespace biserve {
namespace {

namespace fs = std::filesystem;

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::Pair;
using testing::RandomModelOptions;
using testing::RandomModelSpec;
using ::testing::StartsWith;

// Every wait in these tests is bounded by this: a bug fails the test
// instead of hanging it.
constexpr absl::Duration kBound = absl::Seconds(20);

void WriteText(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

std::string ReadText(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

// Moves the file's modification time one second on: a change that keeps
// its size.
void Touch(const std::string& path) {
  fs::last_write_time(path,
                      fs::last_write_time(path) + std::chrono::seconds(1));
}

// A repository in a fresh temporary folder, a registry, and a fake model
// loader: a model file holds a word, and loading it gives a small model
// named after that word, or INVALID_ARGUMENT if the word contains "broken".
class RepositoryWatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Unique per test and per process (two build trees may run the same
    // test at once).
    root_ = absl::StrCat(
        ::testing::TempDir(), "repository_watcher_test_", getpid(), "_",
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);

    std::mt19937 rng(5);
    RandomModelOptions options;
    options.allow_embedding = false;
    spec_ = RandomModelSpec(rng, options);

    ModelRegistry::Options registry_options;
    registry_options.on_serving_change = [this](const std::string& model,
                                                bool serving) {
      log_.Record(model, serving);
    };
    auto registry = ModelRegistry::Create(std::move(registry_options));
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_ = *std::move(registry);
  }

  void TearDown() override {
    watcher_.reset();
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  RepositoryWatcher::Options DefaultOptions() {
    RepositoryWatcher::Options options;
    options.repository_path = root_;
    options.poll_interval = absl::Minutes(10);  // tests call PollOnce
    // The server's list (importers/model_file.h); core cannot include it.
    options.model_file_names = {"model.pb", "model.pbtxt", "model.onnx"};
    options.load_model = [this](const std::string& path, Precision) {
      return FakeLoad(path);
    };
    options.load_config = ReadModelConfig;
    return options;
  }

  void MakeWatcher(RepositoryWatcher::Options options) {
    auto watcher =
        RepositoryWatcher::Create(std::move(options), registry_.get());
    ASSERT_TRUE(watcher.ok()) << watcher.status();
    watcher_ = *std::move(watcher);
  }
  void MakeWatcher() { MakeWatcher(DefaultOptions()); }

  absl::StatusOr<std::shared_ptr<const Model>> FakeLoad(
      const std::string& path) {
    std::function<void(const std::string&)> hook;
    {
      std::lock_guard<std::mutex> lock(mu_);
      loads_.push_back(path);
      hook = before_load_;
    }
    if (hook) hook(path);
    const std::string word(absl::StripAsciiWhitespace(ReadText(path)));
    if (absl::StrContains(word, "broken")) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": the weights are broken"));
    }
    ModelSpec spec = spec_;
    spec.name = word;
    return Model::Create(spec);
  }

  // Writes `word` as <root>/<name>/<version>/<file>; returns the path.
  std::string WriteModel(const std::string& name, int64_t version,
                         const std::string& word,
                         const std::string& file = "model.pbtxt") {
    const std::string path =
        absl::StrCat(root_, "/", name, "/", version, "/", file);
    WriteText(path, word);
    return path;
  }
  std::string VersionDir(const std::string& name, int64_t version) {
    return absl::StrCat(root_, "/", name, "/", version);
  }
  void WriteConfig(const std::string& name, const std::string& text) {
    WriteText(absl::StrCat(root_, "/", name, "/config.pbtxt"), text);
  }

  // The word of the model serving `version` (0: the newest) of `name`.
  std::string Word(const std::string& name, int64_t version = 0) {
    absl::StatusOr<ServableModel> servable = registry_->Get(name, version);
    if (!servable.ok()) return std::string(servable.status().ToString());
    return servable->model->name();
  }

  std::vector<int64_t> Served(const std::string& name) {
    return registry_->AvailableVersions(name);
  }

  // The registry's view of `name`; an empty status if it is not listed.
  ModelStatus StatusOf(const std::string& name) {
    return testing::FindStatus(*registry_, name).value_or(ModelStatus{});
  }
  std::vector<std::pair<int64_t, VersionState>> States(
      const std::string& name) {
    return testing::VersionStates(StatusOf(name));
  }
  std::vector<std::string> ListedNames() {
    return testing::ListedNames(*registry_);
  }

  int Loads(const std::string& path) {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int>(std::count(loads_.begin(), loads_.end(), path));
  }
  int TotalLoads() {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int>(loads_.size());
  }
  void SetBeforeLoad(std::function<void(const std::string&)> hook) {
    std::lock_guard<std::mutex> lock(mu_);
    before_load_ = std::move(hook);
  }

  // Runs PollOnce on a thread of its own and, while that poll is held in
  // its load (one model file, not yet read: the first, or the one at
  // `only_path` if given), runs `while_held`. A test failure if no such
  // load starts within kBound.
  void WhileALoadIsHeld(const std::function<void()>& while_held,
                        const std::string& only_path = "") {
    testing::Notification loading, release;
    SetBeforeLoad([&](const std::string& path) {
      if (!only_path.empty() && path != only_path) return;
      loading.Notify();
      release.WaitForNotificationWithTimeout(kBound);
    });
    std::thread poller([&] { watcher_->PollOnce(); });
    const bool started = loading.WaitForNotificationWithTimeout(kBound);
    EXPECT_TRUE(started);
    if (started) while_held();
    release.Notify();
    poller.join();
    SetBeforeLoad(nullptr);
  }

  std::string root_;
  ModelSpec spec_;
  testing::FakeClock clock_;  // for the watchers given it
  testing::ServingLog log_;
  std::mutex mu_;
  std::vector<std::string> loads_;                       // guarded by mu_
  std::function<void(const std::string&)> before_load_;  // guarded by mu_
  std::unique_ptr<ModelRegistry> registry_;
  // Last: destroyed (and its thread stopped) before what it uses.
  std::unique_ptr<RepositoryWatcher> watcher_;
};

TEST_F(RepositoryWatcherTest, CreateRejectsMissingOrInvalidOptions) {
  RepositoryWatcher::Options no_path = DefaultOptions();
  no_path.repository_path.clear();
  EXPECT_EQ(RepositoryWatcher::Create(no_path, registry_.get()).status().code(),
            absl::StatusCode::kInvalidArgument);

  RepositoryWatcher::Options no_names = DefaultOptions();
  no_names.model_file_names.clear();
  auto nameless = RepositoryWatcher::Create(no_names, registry_.get());
  EXPECT_EQ(nameless.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(nameless.status().message()),
              HasSubstr("model_file_names"));

  RepositoryWatcher::Options no_loader = DefaultOptions();
  no_loader.load_model = nullptr;
  auto missing = RepositoryWatcher::Create(no_loader, registry_.get());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("load_model"));

  RepositoryWatcher::Options no_config = DefaultOptions();
  no_config.load_config = nullptr;
  EXPECT_EQ(
      RepositoryWatcher::Create(no_config, registry_.get()).status().code(),
      absl::StatusCode::kInvalidArgument);

  RepositoryWatcher::Options zero_interval = DefaultOptions();
  zero_interval.poll_interval = absl::ZeroDuration();
  auto zero = RepositoryWatcher::Create(zero_interval, registry_.get());
  EXPECT_EQ(zero.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(zero.status().message()), HasSubstr("poll_interval"));

  EXPECT_EQ(
      RepositoryWatcher::Create(DefaultOptions(), nullptr).status().code(),
      absl::StatusCode::kInvalidArgument);
}

TEST_F(RepositoryWatcherTest, LatestPolicyLoadsAndServesOnlyTheNewestVersion) {
  const std::string v1 = WriteModel("m", 1, "one");
  const std::string v2 = WriteModel("m", 2, "two");
  const std::string v3 = WriteModel("m", 3, "three");
  MakeWatcher();
  watcher_->PollOnce();
  EXPECT_THAT(Served("m"), ElementsAre(3));
  EXPECT_EQ(Word("m"), "three");
  EXPECT_EQ(Loads(v3), 1);
  EXPECT_EQ(Loads(v1) + Loads(v2), 0);
  EXPECT_THAT(States("m"), ElementsAre(Pair(3, VersionState::kAvailable)));
  EXPECT_EQ(StatusOf("m").version_policy, "latest");
}

TEST_F(RepositoryWatcherTest, LatestNPolicyServesTheNNewestVersions) {
  for (int v = 1; v <= 4; ++v) WriteModel("m", v, absl::StrCat("v", v));
  WriteConfig("m", "version_policy { latest { num_versions: 2 } }");
  MakeWatcher();
  watcher_->PollOnce();
  EXPECT_THAT(Served("m"), ElementsAre(3, 4));
  EXPECT_EQ(Word("m", 3), "v3");
  EXPECT_EQ(StatusOf("m").version_policy, "latest:2");
}

TEST_F(RepositoryWatcherTest, AllPolicyServesEveryVersion) {
  for (int v = 1; v <= 3; ++v) WriteModel("m", v, absl::StrCat("v", v));
  WriteConfig("m", "version_policy { all {} }");
  MakeWatcher();
  watcher_->PollOnce();
  EXPECT_THAT(Served("m"), ElementsAre(1, 2, 3));
  EXPECT_EQ(Word("m", 1), "v1");
  EXPECT_EQ(Word("m"), "v3");
}

TEST_F(RepositoryWatcherTest, SpecificPolicyServesListedVersionsOnDisk) {
  for (int v = 1; v <= 4; ++v) WriteModel("m", v, absl::StrCat("v", v));
  WriteConfig("m", "version_policy { specific { versions: [1, 3, 5] } }");
  MakeWatcher();
  watcher_->PollOnce();
  EXPECT_THAT(Served("m"), ElementsAre(1, 3));
  EXPECT_EQ(TotalLoads(), 2);
  EXPECT_EQ(Word("m"), "v3");

  WriteModel("m", 5, "v5");  // listed, and now on disk
  WriteModel("m", 6, "v6");  // on disk, not listed
  watcher_->PollOnce();
  EXPECT_THAT(Served("m"), ElementsAre(1, 3, 5));
  EXPECT_EQ(StatusOf("m").version_policy, "specific:1,3,5");
}

TEST_F(RepositoryWatcherTest, NewVersionTakesOverAndTheOldOneUnloads) {
  WriteModel("m", 1, "one");
  MakeWatcher();
  watcher_->PollOnce();
  EXPECT_EQ(Word("m"), "one");

  WriteModel("m", 2, "two");
  watcher_->PollOnce();
  EXPECT_THAT(Served("m"), ElementsAre(2));
  EXPECT_EQ(Word("m"), "two");
  // Nothing held version 1, so it is forgotten at once.
  EXPECT_THAT(States("m"), ElementsAre(Pair(2, VersionState::kAvailable)));
  EXPECT_EQ(registry_->Get("m", 1).status().code(),
            absl::StatusCode::kNotFound);
  // The model served throughout.
  EXPECT_THAT(log_.events(), ElementsAre(Pair("m", false), Pair("m", true)));
}

TEST_F(RepositoryWatcherTest, RequestHoldingTheOldVersionKeepsItAcrossTheSwap) {
  WriteModel("m", 1, "one");
  MakeWatcher();
  watcher_->PollOnce();
  absl::StatusOr<ServableModel> held = registry_->Get("m", 0);
  ASSERT_TRUE(held.ok()) << held.status();
  ASSERT_EQ(held->version, 1);

  WriteModel("m", 2, "two");
  watcher_->PollOnce();
  EXPECT_EQ(Word("m"), "two");
  EXPECT_THAT(States("m"), ElementsAre(Pair(1, VersionState::kUnloading),
                                       Pair(2, VersionState::kAvailable)));
  EXPECT_EQ(registry_->Get("m", 1).status().code(),
            absl::StatusCode::kNotFound);

  // The pinned model is whole: it still evaluates.
  EXPECT_EQ(held->model->name(), "one");
  auto pool = ThreadPool::Create({});
  ASSERT_TRUE(pool.ok());
  const std::vector<float> features(2 * held->model->input_dim(), 0.25f);
  auto results = Evaluate(*held->model, {SequenceInput{2, features, {}, {}}},
                          EvalOptions(), **pool);
  EXPECT_TRUE(results.ok()) << results.status();

  watcher_->PollOnce();  // still held: still unloading
  EXPECT_THAT(States("m"), ElementsAre(Pair(1, VersionState::kUnloading),
                                       Pair(2, VersionState::kAvailable)));

  held->model.reset();  // the request ends
  watcher_->PollOnce();
  EXPECT_THAT(States("m"), ElementsAre(Pair(2, VersionState::kAvailable)));
}

TEST_F(RepositoryWatcherTest, BrokenNewestVersionLeavesThePreviousServing) {
  WriteModel("m", 1, "one");
  MakeWatcher();
  watcher_->PollOnce();

  const std::string v2 = WriteModel("m", 2, "broken");
  watcher_->PollOnce();
  // 1 is the fallback: it answers requests that name no version, and the
  // policy (latest) selects 2 only, which a client may name.
  EXPECT_EQ(Word("m"), "one");
  EXPECT_THAT(Served("m"), IsEmpty());
  EXPECT_EQ(registry_->Get("m", 1).status().code(),
            absl::StatusCode::kNotFound);
  const ModelStatus status = StatusOf("m");
  ASSERT_EQ(status.versions.size(), 2u);
  EXPECT_EQ(status.versions[0].state, VersionState::kAvailable);
  EXPECT_EQ(status.versions[1].state, VersionState::kFailed);
  EXPECT_THAT(status.versions[1].reason, HasSubstr("the weights are broken"));
  absl::StatusOr<ServableModel> broken = registry_->Get("m", 2);
  EXPECT_EQ(broken.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(broken.status().message()),
              HasSubstr("the weights are broken"));

  // A failed version is not retried until its file changes.
  watcher_->PollOnce();
  EXPECT_EQ(Loads(v2), 1);
  EXPECT_EQ(Word("m"), "one");

  WriteModel("m", 2, "two");  // fixed
  watcher_->PollOnce();
  EXPECT_EQ(Loads(v2), 2);
  EXPECT_THAT(Served("m"), ElementsAre(2));
  EXPECT_THAT(States("m"), ElementsAre(Pair(2, VersionState::kAvailable)));
}

TEST_F(RepositoryWatcherTest, FreshStartWithBrokenNewestFallsBackToAnOlderOne) {
  const std::string v1 = WriteModel("m", 1, "one");
  WriteModel("m", 2, "two");
  WriteModel("m", 3, "broken");
  MakeWatcher();
  watcher_->PollOnce();
  EXPECT_EQ(Word("m"), "two");
  EXPECT_EQ(Loads(v1), 0);  // the newest version that loads is enough
  EXPECT_THAT(States("m"), ElementsAre(Pair(2, VersionState::kAvailable),
                                       Pair(3, VersionState::kFailed)));
  EXPECT_THAT(log_.events(), ElementsAre(Pair("m", false), Pair("m", true)));
  // The policy selects 3 only: 2 answers requests that name no version, and
  // no client may name it.
  EXPECT_THAT(Served("m"), IsEmpty());
  EXPECT_EQ(registry_->Get("m", 2).status().code(),
            absl::StatusCode::kNotFound);

  // Steady: nothing is loaded again on the next scan.
  const int loads = TotalLoads();
  watcher_->PollOnce();
  EXPECT_EQ(TotalLoads(), loads);
  EXPECT_EQ(Word("m"), "two");
}

TEST_F(RepositoryWatcherTest, VersionThatFailedAsAFallbackIsNotFoundWhenNamed) {
  // Under latest, 3 fails, 2 is tried as the fallback and fails too, 1
  // loads: the policy selects neither 1 nor 2, so naming either is
  // NOT_FOUND (the reason why 2 failed stays in ListModels).
  WriteModel("m", 1, "one");
  WriteModel("m", 2, "broken two");
  WriteModel("m", 3, "broken three");
  MakeWatcher();
  watcher_->PollOnce();
  EXPECT_EQ(Word("m"), "one");
  EXPECT_THAT(States("m"), ElementsAre(Pair(1, VersionState::kAvailable),
                                       Pair(2, VersionState::kFailed),
                                       Pair(3, VersionState::kFailed)));
  absl::StatusOr<ServableModel> two = registry_->Get("m", 2);
  EXPECT_EQ(two.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(two.status().message(),
            "model 'm' version 2 is not served under its version policy "
            "latest (version 1 answers requests that name no version while "
            "version 3 has failed)");
  EXPECT_EQ(registry_->Get("m", 1).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(registry_->Get("m", 3).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(RepositoryWatcherTest, ModelWithOnlyBrokenVersionsIsFailedPrecondition) {
  WriteModel("m", 1, "broken one");
  WriteModel("m", 2, "broken two");
  MakeWatcher();
  watcher_->PollOnce();
  EXPECT_THAT(Served("m"), IsEmpty());
  EXPECT_FALSE(registry_->IsServing("m"));
  absl::StatusOr<ServableModel> got = registry_->Get("m", 0);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("version 1: "));
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("version 2: "));
  // Known, not serving: health answers NOT_SERVING for it, not NOT_FOUND.
  EXPECT_THAT(log_.events(), ElementsAre(Pair("m", false)));
}

TEST_F(RepositoryWatcherTest, VersionFolderWithoutAModelFileFails) {
  fs::create_directories(VersionDir("m", 1));
  MakeWatcher();
  watcher_->PollOnce();
  EXPECT_EQ(TotalLoads(), 0);
  const ModelStatus status = StatusOf("m");
  ASSERT_EQ(status.versions.size(), 1u);
  EXPECT_EQ(status.versions[0].state, VersionState::kFailed);
  // Relative to the repository: clients see it.
  EXPECT_EQ(status.versions[0].reason,
            "no model.pb, model.pbtxt or model.onnx in m/1");
  EXPECT_EQ(registry_->Get("m", 0).status().code(),
            absl::StatusCode::kFailedPrecondition);

  WriteModel("m", 1, "one");  // the file arrives
  watcher_->PollOnce();
  EXPECT_EQ(Word("m"), "one");
}

TEST_F(RepositoryWatcherTest, FailureReasonsNameFilesRelativeToTheRepository) {
  // Reported: ListModels' reasons (and FAILED_PRECONDITION messages) carried
  // the server's absolute paths.
  WriteModel("m", 1, "broken");
  WriteConfig("c", "version_policy { al {} }");
  WriteModel("c", 1, "one");
  MakeWatcher();
  watcher_->PollOnce();
  const ModelStatus status = StatusOf("m");
  ASSERT_EQ(status.versions.size(), 1u);
  EXPECT_EQ(status.versions[0].reason,
            "m/1/model.pbtxt: the weights are broken");
  const std::string message(registry_->Get("m", 1).status().message());
  EXPECT_THAT(message, HasSubstr("failed to load: m/1/model.pbtxt: "));
  EXPECT_THAT(message, Not(HasSubstr(root_)));
  EXPECT_THAT(StatusOf("c").config_error, StartsWith("c/config.pbtxt"));
  EXPECT_THAT(StatusOf("c").config_error, Not(HasSubstr(root_)));
}

TEST(RepositoryRelativeTest, TakesTheRepositoryOffPathsThatStartWithIt) {
  EXPECT_EQ(RepositoryRelative("/srv/models/b/2/model.pb: bad", "/srv/models"),
            "b/2/model.pb: bad");
  EXPECT_EQ(RepositoryRelative("/srv/models/b/2/model.pb: bad", "/srv/models/"),
            "b/2/model.pb: bad");
  EXPECT_EQ(
      RepositoryRelative("models/b/1/model.pb (from models/b/1)", "models"),
      "b/1/model.pb (from b/1)");
  EXPECT_EQ(RepositoryRelative("in 'models/b/config.pbtxt'", "models"),
            "in 'b/config.pbtxt'");
  // Inside another path, or no path at all: unchanged.
  EXPECT_EQ(RepositoryRelative("othermodels/x and /a/models/y", "models"),
            "othermodels/x and /a/models/y");
  EXPECT_EQ(RepositoryRelative("no path here", "models"), "no path here");
  EXPECT_EQ(RepositoryRelative("models/x", ""), "models/x");
}

TEST_F(RepositoryWatcherTest, EmptyNewestFolderLeavesThePreviousServing) {
  WriteModel("m", 1, "one");
  MakeWatcher();
  watcher_->PollOnce();
  fs::create_directories(VersionDir("m", 2));  // still being copied
  watcher_->PollOnce();
  EXPECT_EQ(Word("m"), "one");  // the fallback
  EXPECT_THAT(States("m"), ElementsAre(Pair(1, VersionState::kAvailable),
                                       Pair(2, VersionState::kFailed)));
}

TEST_F(RepositoryWatcherTest,
       SwitchToLatestWithABrokenNewestKeepsOneFallbackOnly) {
  // Reported: from all {} to latest { num_versions: 1 } while the newest
  // version failed left the older versions serving, and answering requests
  // that name them. As TF Serving's availability-preserving policy does,
  // one version keeps serving while no selected one loads (the newest that
  // loads); the others unload, and requests naming them get NOT_FOUND.
  WriteConfig("m", "version_policy { all {} }");
  WriteModel("m", 1, "one");
  WriteModel("m", 2, "two");
  WriteModel("m", 3, "broken");
  MakeWatcher();
  watcher_->PollOnce();
  ASSERT_THAT(Served("m"), ElementsAre(1, 2));

  WriteConfig("m", "version_policy { latest { num_versions: 1 } }");
  watcher_->PollOnce();
  EXPECT_THAT(States("m"), ElementsAre(Pair(2, VersionState::kAvailable),
                                       Pair(3, VersionState::kFailed)));
  EXPECT_EQ(registry_->Get("m", 1).status().code(),
            absl::StatusCode::kNotFound);
  // 2 is the fallback: it answers requests that name no version only.
  EXPECT_EQ(Word("m"), "two");
  EXPECT_EQ(registry_->Get("m", 2).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_THAT(Served("m"), IsEmpty());
  EXPECT_EQ(registry_->Get("m", 3).status().code(),
            absl::StatusCode::kFailedPrecondition);

  // Once the newest loads, the fallback unloads too.
  WriteModel("m", 3, "three");
  watcher_->PollOnce();
  EXPECT_THAT(Served("m"), ElementsAre(3));
  EXPECT_EQ(registry_->Get("m", 2).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(RepositoryWatcherTest,
       SwitchToLatestWithABrokenNewestAnswersOnlyUnnamedRequestsByTheFallback) {
  // Reported (issue 15): from all {} to latest { num_versions: 1 } while the
  // newest version failed left the older version answering requests that
  // name it. It keeps answering requests that name no version (publishing
  // a broken version never takes a model offline), but the policy decides
  // which versions a client can name.
  WriteConfig("m", "version_policy { all {} }");
  WriteModel("m", 1, "one");
  WriteModel("m", 2, "broken");
  MakeWatcher();
  watcher_->PollOnce();
  // Under all {} both are selected: 1 is named and listed as any version.
  ASSERT_EQ(Word("m", 1), "one");
  ASSERT_THAT(Served("m"), ElementsAre(1));
  ASSERT_EQ(StatusOf("m").versions.at(0).reason, "");

  WriteConfig("m", "version_policy { latest { num_versions: 1 } }");
  watcher_->PollOnce();
  absl::StatusOr<ServableModel> named = registry_->Get("m", 1);
  EXPECT_EQ(named.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(named.status().message(),
            "model 'm' version 1 is not served under its version policy "
            "latest (it only answers requests that name no version while "
            "version 2 has failed)");
  absl::StatusOr<ServableModel> unnamed = registry_->Get("m", 0);
  ASSERT_TRUE(unnamed.ok()) << unnamed.status();
  EXPECT_EQ(unnamed->version, 1);
  EXPECT_EQ(unnamed->model->name(), "one");
  EXPECT_TRUE(registry_->IsServing("m"));
  // Metadata lists the versions a client may name: not the fallback.
  EXPECT_THAT(Served("m"), IsEmpty());
  ModelStatus status = StatusOf("m");
  EXPECT_EQ(status.version_policy, "latest");
  EXPECT_THAT(testing::VersionStates(status),
              ElementsAre(Pair(1, VersionState::kAvailable),
                          Pair(2, VersionState::kFailed)));
  EXPECT_EQ(status.versions.at(0).reason,
            "fallback: serves requests that name no version until a version "
            "selected by the policy loads");
  EXPECT_EQ(registry_->Get("m", 2).status().code(),
            absl::StatusCode::kFailedPrecondition);

  // Steady: the next scan changes nothing.
  watcher_->PollOnce();
  EXPECT_EQ(registry_->Get("m", 1).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(Word("m"), "one");

  // A good version 3 appears: it serves, named or not, and 1 unloads.
  unnamed = absl::UnknownError("request over");  // 1 has no user left
  WriteModel("m", 3, "three");
  watcher_->PollOnce();
  EXPECT_EQ(Word("m", 3), "three");
  EXPECT_EQ(Word("m"), "three");
  EXPECT_THAT(Served("m"), ElementsAre(3));
  EXPECT_THAT(States("m"), ElementsAre(Pair(3, VersionState::kAvailable)));
  EXPECT_EQ(StatusOf("m").versions.at(0).reason, "");
  absl::StatusOr<ServableModel> gone = registry_->Get("m", 1);
  EXPECT_EQ(gone.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(gone.status().message()),
              HasSubstr("is not served; available versions: 3"));
}

TEST_F(RepositoryWatcherTest, FallbackIsNotFoundWhenNamedEvenWhileItLoads) {
  // A fresh start: 3 (selected) fails, 1 loads as the fallback. While it
  // loads, a request naming it is told NOT_FOUND (it will never be the
  // client's), not to retry.
  const std::string v1 = WriteModel("m", 1, "one");
  WriteModel("m", 3, "broken");
  MakeWatcher();
  WhileALoadIsHeld(
      [&] {
        EXPECT_EQ(registry_->Get("m", 1).status().code(),
                  absl::StatusCode::kNotFound);
        EXPECT_EQ(registry_->Get("m", 0).status().code(),
                  absl::StatusCode::kUnavailable);
      },
      v1);
  EXPECT_EQ(Word("m"), "one");

  // A newer version that loads takes over as the fallback; while it loads,
  // the old fallback keeps the model answering.
  const std::string v2 = WriteModel("m", 2, "two");
  WhileALoadIsHeld(
      [&] {
        EXPECT_EQ(Word("m"), "one");
        EXPECT_EQ(registry_->Get("m", 1).status().code(),
                  absl::StatusCode::kNotFound);
        EXPECT_EQ(registry_->Get("m", 2).status().code(),
                  absl::StatusCode::kNotFound);
        EXPECT_THAT(Served("m"), IsEmpty());
      },
      v2);
  EXPECT_EQ(Word("m"), "two");
  EXPECT_EQ(registry_->Get("m", 2).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_THAT(States("m"), ElementsAre(Pair(2, VersionState::kAvailable),
                                       Pair(3, VersionState::kFailed)));
}

TEST_F(RepositoryWatcherTest, SwitchingBackToAllMakesTheFallbackNameableAgain) {
  WriteConfig("m", "version_policy { latest { num_versions: 1 } }");
  WriteModel("m", 1, "one");
  WriteModel("m", 2, "broken");
  MakeWatcher();
  watcher_->PollOnce();
  ASSERT_EQ(registry_->Get("m", 1).status().code(),
            absl::StatusCode::kNotFound);

  WriteConfig("m", "version_policy { all {} }");
  watcher_->PollOnce();
  EXPECT_EQ(Word("m", 1), "one");
  EXPECT_EQ(Word("m"), "one");
  EXPECT_THAT(Served("m"), ElementsAre(1));
  EXPECT_EQ(StatusOf("m").versions.at(0).reason, "");
}

TEST_F(RepositoryWatcherTest,
       SwitchToSpecificWithABrokenVersionKeepsOneFallbackOnly) {
  WriteConfig("m", "version_policy { all {} }");
  WriteModel("m", 1, "one");
  WriteModel("m", 2, "two");
  WriteModel("m", 3, "broken");
  MakeWatcher();
  watcher_->PollOnce();
  WriteConfig("m", "version_policy { specific { versions: 3 } }");
  watcher_->PollOnce();
  EXPECT_EQ(Word("m"), "two");
  EXPECT_THAT(Served("m"), IsEmpty());
  EXPECT_THAT(States("m"), ElementsAre(Pair(2, VersionState::kAvailable),
                                       Pair(3, VersionState::kFailed)));
  EXPECT_EQ(registry_->Get("m", 1).status().code(),
            absl::StatusCode::kNotFound);
  absl::StatusOr<ServableModel> fallback = registry_->Get("m", 2);
  EXPECT_EQ(fallback.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(fallback.status().message()),
              HasSubstr("under its version policy specific:3 (it only "
                        "answers requests that name no version"));
  // Specific never loads a version it does not list: a fresh start with
  // only the broken one listed serves nothing.
  watcher_.reset();
  auto registry = ModelRegistry::Create({});
  ASSERT_TRUE(registry.ok());
  registry_ = *std::move(registry);
  MakeWatcher();
  watcher_->PollOnce();
  EXPECT_THAT(Served("m"), IsEmpty());
  EXPECT_EQ(registry_->Get("m", 0).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(RepositoryWatcherTest, OnlyTheListedFileNamesAreModelFiles) {
  WriteModel("m", 1, "one", "model.json");
  RepositoryWatcher::Options options = DefaultOptions();
  options.model_file_names = {"model.pb"};
  MakeWatcher(std::move(options));
  watcher_->PollOnce();
  EXPECT_EQ(TotalLoads(), 0);
  EXPECT_EQ(StatusOf("m").versions[0].reason, "no model.pb in m/1");
}

TEST_F(RepositoryWatcherTest, OnnxFileLoadsThroughTheInjectedLoader) {
  const std::string onnx = WriteModel("m", 1, "imported", "model.onnx");
  MakeWatcher();
  watcher_->PollOnce();
  EXPECT_EQ(Word("m"), "imported");
  EXPECT_EQ(Loads(onnx), 1);
}

TEST_F(RepositoryWatcherTest, RefusedOnnxFileShowsItsReasonAndOthersServe) {
  WriteModel("bad", 1, "broken", "model.onnx");
  WriteModel("good", 1, "fine", "model.onnx");
  MakeWatcher();
  watcher_->PollOnce();
  EXPECT_THAT(States("bad"), ElementsAre(Pair(1, VersionState::kFailed)));
  EXPECT_EQ(StatusOf("bad").versions[0].reason,
            "bad/1/model.onnx: the weights are broken");
  EXPECT_EQ(Word("good"), "fine");
}

TEST_F(RepositoryWatcherTest, FolderWithTwoModelFilesIsRefusedNamingBoth) {
  WriteModel("m", 1, "binary", "model.pb");
  WriteModel("m", 1, "imported", "model.onnx");
  MakeWatcher();
  watcher_->PollOnce();
  EXPECT_EQ(TotalLoads(), 0);  // never a guess
  const ModelStatus status = StatusOf("m");
  ASSERT_EQ(status.versions.size(), 1u);
  EXPECT_EQ(status.versions[0].state, VersionState::kFailed);
  EXPECT_EQ(status.versions[0].reason,
            "m/1 holds more than one model file (model.pb, model.onnx); keep "
            "one: which was meant is not guessed");
  EXPECT_EQ(registry_->Get("m", 0).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(RepositoryWatcherTest, RemovingTheSecondModelFileLoadsTheOneLeft) {
  const std::string pb = WriteModel("m", 1, "binary", "model.pb");
  const std::string pbtxt = WriteModel("m", 1, "text", "model.pbtxt");
  MakeWatcher();
  watcher_->PollOnce();
  EXPECT_THAT(StatusOf("m").versions[0].reason,
              HasSubstr("(model.pb, model.pbtxt)"));
  fs::remove(pb);
  watcher_->PollOnce();
  EXPECT_EQ(Word("m"), "text");
  EXPECT_EQ(Loads(pbtxt), 1);
  EXPECT_EQ(Loads(pb), 0);
}

TEST_F(RepositoryWatcherTest, SecondModelFileBesideAServingOneKeepsItServing) {
  WriteModel("m", 1, "binary", "model.pb");
  MakeWatcher();
  watcher_->PollOnce();
  WriteModel("m", 1, "imported", "model.onnx");
  watcher_->PollOnce();
  EXPECT_EQ(Word("m"), "binary");  // the loaded copy keeps serving
  EXPECT_THAT(StatusOf("m").versions[0].reason,
              HasSubstr("(model.pb, model.onnx)"));
}

TEST_F(RepositoryWatcherTest, FoldersThatAreNotVersionsOrModelsAreIgnored) {
  WriteModel("m", 1, "one");
  fs::create_directories(root_ + "/m/0");
  fs::create_directories(root_ + "/m/latest");
  fs::create_directories(root_ + "/m/-3");
  fs::create_directories(root_ + "/m/.9");
  WriteText(root_ + "/m/7", "a file, not a folder");
  WriteText(root_ + "/.hidden/1/model.pbtxt", "hidden");
  WriteText(root_ + "/README", "not a model");
  MakeWatcher();
  watcher_->PollOnce();
  EXPECT_THAT(ListedNames(), ElementsAre("m"));
  EXPECT_THAT(States("m"), ElementsAre(Pair(1, VersionState::kAvailable)));
  EXPECT_EQ(TotalLoads(), 1);
}

TEST_F(RepositoryWatcherTest, UnchangedFilesAreNotReloaded) {
  const std::string v1 = WriteModel("m", 1, "one");
  MakeWatcher();
  for (int i = 0; i < 3; ++i) watcher_->PollOnce();
  EXPECT_EQ(Loads(v1), 1);
}

TEST_F(RepositoryWatcherTest,
       RewrittenFileIsReloadedWhileOldHoldersKeepTheirs) {
  const std::string v1 = WriteModel("m", 1, "one");
  MakeWatcher();
  watcher_->PollOnce();
  absl::StatusOr<ServableModel> held = registry_->Get("m", 1);
  ASSERT_TRUE(held.ok());

  WriteModel("m", 1, "eins");  // a different size
  watcher_->PollOnce();
  EXPECT_EQ(Loads(v1), 2);
  EXPECT_EQ(Word("m", 1), "eins");
  EXPECT_EQ(held->model->name(), "one");
  EXPECT_THAT(States("m"), ElementsAre(Pair(1, VersionState::kAvailable)));
  EXPECT_THAT(log_.events(), ElementsAre(Pair("m", false), Pair("m", true)));
}

TEST_F(RepositoryWatcherTest, TouchedFileIsReloaded) {
  const std::string v1 = WriteModel("m", 1, "one");
  MakeWatcher();
  watcher_->PollOnce();
  absl::StatusOr<ServableModel> before = registry_->Get("m", 1);
  ASSERT_TRUE(before.ok());

  Touch(v1);  // same size, new modification time
  watcher_->PollOnce();
  EXPECT_EQ(Loads(v1), 2);
  absl::StatusOr<ServableModel> after = registry_->Get("m", 1);
  ASSERT_TRUE(after.ok());
  EXPECT_NE(after->model, before->model);
}

TEST_F(RepositoryWatcherTest, FailedReloadKeepsServingTheLoadedCopy) {
  const std::string v1 = WriteModel("m", 1, "one");
  MakeWatcher();
  watcher_->PollOnce();

  WriteModel("m", 1, "broken!");
  watcher_->PollOnce();
  EXPECT_EQ(Loads(v1), 2);
  EXPECT_EQ(Word("m"), "one");
  ModelStatus status = StatusOf("m");
  ASSERT_EQ(status.versions.size(), 1u);
  EXPECT_EQ(status.versions[0].state, VersionState::kAvailable);
  EXPECT_THAT(status.versions[0].reason,
              HasSubstr("reload failed, still serving the loaded copy"));
  EXPECT_THAT(status.versions[0].reason, HasSubstr("broken"));

  watcher_->PollOnce();  // not retried while the file stays the same
  EXPECT_EQ(Loads(v1), 2);

  WriteModel("m", 1, "fixed it");
  watcher_->PollOnce();
  EXPECT_EQ(Word("m"), "fixed it");
  EXPECT_EQ(StatusOf("m").versions[0].reason, "");
}

TEST_F(RepositoryWatcherTest, ServingCopyStaysWhenItsFileDisappears) {
  const std::string v1 = WriteModel("m", 1, "one");
  MakeWatcher();
  watcher_->PollOnce();
  fs::remove(v1);  // the folder stays
  watcher_->PollOnce();
  EXPECT_EQ(Word("m"), "one");
  EXPECT_THAT(StatusOf("m").versions[0].reason,
              HasSubstr("no model.pb, model.pbtxt or model.onnx"));
}

TEST_F(RepositoryWatcherTest, ReloadServesTheLoadedCopyMeanwhile) {
  const std::string v1 = WriteModel("m", 1, "one");
  MakeWatcher();
  watcher_->PollOnce();
  WriteModel("m", 1, "uno!");

  WhileALoadIsHeld([&] {
    EXPECT_EQ(Word("m"), "one");
    EXPECT_THAT(States("m"), ElementsAre(Pair(1, VersionState::kAvailable)));
  });
  EXPECT_EQ(Word("m"), "uno!");
}

TEST_F(RepositoryWatcherTest, GetIsUnavailableWhileTheFirstLoadRuns) {
  WriteModel("m", 1, "one");
  MakeWatcher();
  WhileALoadIsHeld([&] {
    absl::StatusOr<ServableModel> newest = registry_->Get("m", 0);
    EXPECT_EQ(newest.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_THAT(std::string(newest.status().message()),
                HasSubstr("is loading"));
    EXPECT_EQ(registry_->Get("m", 1).status().code(),
              absl::StatusCode::kUnavailable);
    EXPECT_THAT(States("m"), ElementsAre(Pair(1, VersionState::kLoading)));
    EXPECT_FALSE(registry_->IsServing("m"));
  });
  EXPECT_EQ(Word("m"), "one");
}

TEST_F(RepositoryWatcherTest, GetOfUnknownModelOrVersionIsNotFound) {
  WriteModel("m", 1, "one");
  MakeWatcher();
  watcher_->PollOnce();
  EXPECT_EQ(registry_->Get("other", 0).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(registry_->Get("m", 9).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(RepositoryWatcherTest, RemovedModelFolderUnloadsEveryVersion) {
  WriteConfig("m", "version_policy { all {} }");
  WriteModel("m", 1, "one");
  WriteModel("m", 2, "two");
  WriteModel("other", 1, "o");
  MakeWatcher();
  watcher_->PollOnce();
  ASSERT_THAT(Served("m"), ElementsAre(1, 2));

  fs::remove_all(root_ + "/m");
  watcher_->PollOnce();
  absl::StatusOr<ServableModel> got = registry_->Get("m", 0);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(got.status().message()),
              HasSubstr("not in the repository"));
  EXPECT_THAT(ListedNames(), ElementsAre("other"));
  EXPECT_EQ(Word("other"), "o");
  EXPECT_THAT(
      log_.events(),
      ElementsAre(Pair("m", false), Pair("m", true), Pair("other", false),
                  Pair("other", true), Pair("m", false)));
}

TEST_F(RepositoryWatcherTest, RemovedModelInUseIsForgottenWhenItsUserLeaves) {
  WriteModel("m", 1, "one");
  MakeWatcher();
  watcher_->PollOnce();
  absl::StatusOr<ServableModel> held = registry_->Get("m", 0);
  ASSERT_TRUE(held.ok());

  fs::remove_all(root_ + "/m");
  watcher_->PollOnce();
  EXPECT_EQ(registry_->Get("m", 0).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_THAT(States("m"), ElementsAre(Pair(1, VersionState::kUnloading)));
  EXPECT_EQ(held->model->name(), "one");

  held->model.reset();
  watcher_->PollOnce();
  EXPECT_THAT(ListedNames(), IsEmpty());
}

TEST_F(RepositoryWatcherTest, RemovedModelFolderThatComesBackServesAgain) {
  WriteModel("m", 1, "one");
  MakeWatcher();
  watcher_->PollOnce();
  fs::remove_all(root_ + "/m");
  watcher_->PollOnce();
  WriteModel("m", 1, "again");
  watcher_->PollOnce();
  EXPECT_EQ(Word("m"), "again");
  // Removed, then back as a new model: not serving until it loads.
  EXPECT_THAT(log_.events(),
              ElementsAre(Pair("m", false), Pair("m", true), Pair("m", false),
                          Pair("m", false), Pair("m", true)));
}

TEST_F(RepositoryWatcherTest, RemovedVersionFolderUnloadsThatVersion) {
  WriteConfig("m", "version_policy { all {} }");
  WriteModel("m", 1, "one");
  WriteModel("m", 2, "two");
  MakeWatcher();
  watcher_->PollOnce();
  fs::remove_all(VersionDir("m", 2));
  watcher_->PollOnce();
  EXPECT_THAT(Served("m"), ElementsAre(1));
  EXPECT_THAT(States("m"), ElementsAre(Pair(1, VersionState::kAvailable)));
}

TEST_F(RepositoryWatcherTest, RemovingTheNewestVersionServesThePreviousOne) {
  const std::string v1 = WriteModel("m", 1, "one");
  WriteModel("m", 2, "two");
  MakeWatcher();
  watcher_->PollOnce();
  EXPECT_EQ(Loads(v1), 0);
  fs::remove_all(VersionDir("m", 2));
  watcher_->PollOnce();
  EXPECT_THAT(Served("m"), ElementsAre(1));
  EXPECT_EQ(Word("m"), "one");
}

TEST_F(RepositoryWatcherTest, UnparsableConfigKeepsThePreviousSettings) {
  WriteConfig("m", "version_policy { all {} }");
  WriteModel("m", 1, "one");
  WriteModel("m", 2, "two");
  MakeWatcher();
  watcher_->PollOnce();
  ASSERT_THAT(Served("m"), ElementsAre(1, 2));

  WriteConfig("m", "version_policy { al {} }");  // a typo
  watcher_->PollOnce();
  EXPECT_THAT(Served("m"), ElementsAre(1, 2));
  ModelStatus status = StatusOf("m");
  EXPECT_EQ(status.version_policy, "all");
  EXPECT_THAT(status.config_error, HasSubstr("config.pbtxt"));
  EXPECT_THAT(status.config_error, HasSubstr("line 1"));

  WriteConfig("m", "version_policy { latest {} }");  // fixed
  watcher_->PollOnce();
  status = StatusOf("m");
  EXPECT_EQ(status.config_error, "");
  EXPECT_EQ(status.version_policy, "latest");
  EXPECT_THAT(Served("m"), ElementsAre(2));
}

TEST_F(RepositoryWatcherTest, UnparsableConfigAtFirstUsesTheDefaults) {
  WriteConfig("m", "this is not a config");
  WriteModel("m", 1, "one");
  WriteModel("m", 2, "two");
  MakeWatcher();
  watcher_->PollOnce();
  EXPECT_THAT(Served("m"), ElementsAre(2));
  EXPECT_EQ(StatusOf("m").version_policy, "latest");
  EXPECT_THAT(StatusOf("m").config_error, HasSubstr("config.pbtxt"));
}

TEST_F(RepositoryWatcherTest, InvalidConfigValueShowsWhichField) {
  WriteConfig("m", "batching { max_batch_size: 0 }");
  WriteModel("m", 1, "one");
  MakeWatcher();
  watcher_->PollOnce();
  EXPECT_EQ(Word("m"), "one");
  EXPECT_THAT(StatusOf("m").config_error,
              HasSubstr("batching.max_batch_size must be at least 1; was 0"));
  EXPECT_EQ(registry_->Get("m", 0)->batching.max_batch_size,
            BatchingOptions().max_batch_size);
}

TEST_F(RepositoryWatcherTest, RemovedConfigRestoresTheDefaultPolicy) {
  WriteConfig("m", "version_policy { all {} }");
  WriteModel("m", 1, "one");
  WriteModel("m", 2, "two");
  MakeWatcher();
  watcher_->PollOnce();
  ASSERT_THAT(Served("m"), ElementsAre(1, 2));
  fs::remove(root_ + "/m/config.pbtxt");
  watcher_->PollOnce();
  EXPECT_THAT(Served("m"), ElementsAre(2));
  EXPECT_EQ(StatusOf("m").version_policy, "latest");
}

TEST_F(RepositoryWatcherTest, ConfigBatchingOverridesReachTheServable) {
  WriteConfig("m", "batching { max_batch_size: 8 max_queue_delay_us: 0 }");
  WriteModel("m", 1, "one");
  MakeWatcher();
  watcher_->PollOnce();
  absl::StatusOr<ServableModel> got = registry_->Get("m", 0);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->batching.max_batch_size, 8);
  EXPECT_EQ(got->batching.max_queue_delay_us, 0);
  EXPECT_EQ(got->batching.max_batch_steps, BatchingOptions().max_batch_steps);
}

TEST_F(RepositoryWatcherTest, ServingListenerHearsFirstAvailableAndLastGone) {
  MakeWatcher();
  watcher_->PollOnce();
  EXPECT_THAT(log_.events(), IsEmpty());

  // A model folder added at run time whose only version fails: told, not
  // serving (health NOT_SERVING, as at start-up, not an unknown name).
  WriteModel("m", 1, "broken");
  watcher_->PollOnce();
  EXPECT_THAT(log_.events(), ElementsAre(Pair("m", false)));

  WriteModel("m", 1, "one, fixed");
  watcher_->PollOnce();
  EXPECT_THAT(log_.events(), ElementsAre(Pair("m", false), Pair("m", true)));

  WriteModel("m", 2, "two");
  watcher_->PollOnce();
  EXPECT_THAT(log_.events(), ElementsAre(Pair("m", false), Pair("m", true)));

  fs::remove_all(root_ + "/m");
  watcher_->PollOnce();
  EXPECT_THAT(log_.events(),
              ElementsAre(Pair("m", false), Pair("m", true), Pair("m", false)));
}

TEST_F(RepositoryWatcherTest, WarmUpRunsBeforeTheVersionServes) {
  WriteModel("m", 1, "one");
  RepositoryWatcher::Options options = DefaultOptions();
  int warm_ups = 0;
  options.warm_up = [&](const Model& model) {
    ++warm_ups;
    EXPECT_EQ(model.name(), "one");
    EXPECT_FALSE(registry_->Get("m", 1).ok()) << "served before warm-up";
    return absl::OkStatus();
  };
  MakeWatcher(std::move(options));
  watcher_->PollOnce();
  EXPECT_EQ(warm_ups, 1);
  EXPECT_EQ(Word("m"), "one");
}

TEST_F(RepositoryWatcherTest, FailedWarmUpFailsTheVersion) {
  WriteModel("m", 1, "one");
  WriteModel("m", 2, "two");
  RepositoryWatcher::Options options = DefaultOptions();
  options.warm_up = [](const Model& model) {
    return model.name() == "two" ? absl::InternalError("out of memory")
                                 : absl::OkStatus();
  };
  MakeWatcher(std::move(options));
  watcher_->PollOnce();
  EXPECT_EQ(Word("m"), "one");  // the fallback
  const ModelStatus status = StatusOf("m");
  ASSERT_EQ(status.versions.size(), 2u);
  EXPECT_EQ(status.versions[1].state, VersionState::kFailed);
  EXPECT_EQ(status.versions[1].reason, "warm-up failed: out of memory");
}

TEST_F(RepositoryWatcherTest, MissingRepositoryKeepsTheLoadedModels) {
  WriteModel("m", 1, "one");
  MakeWatcher();
  watcher_->PollOnce();
  fs::remove_all(root_);
  watcher_->PollOnce();
  watcher_->PollOnce();
  EXPECT_EQ(Word("m"), "one");
  EXPECT_THAT(log_.events(), ElementsAre(Pair("m", false), Pair("m", true)));
}

TEST_F(RepositoryWatcherTest, LoadsRealModelFilesAndConfigs) {
  const std::string tiny =
      ReadText(std::string(BISERVE_SOURCE_DIR) + "/tests/data/tiny.pbtxt");
  ASSERT_FALSE(tiny.empty());
  WriteModel("tiny", 1, tiny);
  WriteModel("tiny", 2, tiny);
  WriteModel("tiny", 3, "name: \"tiny\" input_dim: 1");  // no layers
  WriteConfig("tiny",
              "version_policy { all {} }\n"
              "batching { max_batch_size: 4 }\n");
  RepositoryWatcher::Options options = DefaultOptions();
  options.load_model = LoadModelFile;
  MakeWatcher(std::move(options));
  watcher_->PollOnce();

  EXPECT_THAT(Served("tiny"), ElementsAre(1, 2));
  const ModelStatus status = StatusOf("tiny");
  ASSERT_EQ(status.versions.size(), 3u);
  EXPECT_EQ(status.versions[2].state, VersionState::kFailed);
  EXPECT_THAT(status.versions[2].reason, HasSubstr("no layers"));

  absl::StatusOr<ServableModel> servable = registry_->Get("tiny", 0);
  ASSERT_TRUE(servable.ok()) << servable.status();
  EXPECT_EQ(servable->version, 2);
  EXPECT_EQ(servable->batching.max_batch_size, 4);
  EXPECT_EQ(servable->model->name(), "tiny");
  auto pool = ThreadPool::Create({});
  ASSERT_TRUE(pool.ok());
  const std::vector<float> x = {1, 2, 3};
  auto results = Evaluate(*servable->model, {SequenceInput{3, x, {}, {}}},
                          EvalOptions(), **pool);
  ASSERT_TRUE(results.ok()) << results.status();
  EXPECT_THAT((*results)[0].output.shape, ElementsAre(3, 1));
}

TEST_F(RepositoryWatcherTest, PollingThreadPicksUpANewVersionAndModel) {
  WriteModel("a", 1, "a1");
  RepositoryWatcher::Options options = DefaultOptions();
  options.poll_interval = absl::Milliseconds(5);
  MakeWatcher(std::move(options));
  watcher_->PollOnce();
  watcher_->Start();

  // Each appears at once (written in a hidden folder, then renamed), a/2
  // before b: a scan that finds b has found a/2 earlier in the same scan.
  WriteText(root_ + "/a/.staging/model.pbtxt", "a2");
  fs::rename(root_ + "/a/.staging", VersionDir("a", 2));
  WriteText(root_ + "/.b/1/model.pbtxt", "b1");
  fs::rename(root_ + "/.b", root_ + "/b");

  ASSERT_TRUE(log_.WaitFor("b", true, kBound));
  EXPECT_EQ(Word("b"), "b1");
  EXPECT_THAT(Served("a"), ElementsAre(2));
  EXPECT_EQ(Word("a"), "a2");
  watcher_.reset();  // stops and joins the polling thread
}

TEST_F(RepositoryWatcherTest, PollingThreadScansWhenThePollIntervalHasPassed) {
  WriteModel("a", 1, "a1");
  RepositoryWatcher::Options options = DefaultOptions();
  options.poll_interval = absl::Hours(1);
  options.clock = &clock_;
  MakeWatcher(std::move(options));
  watcher_->Start();
  // The thread waits on the clock, which has not moved: no scan yet.
  ASSERT_TRUE(clock_.WaitForWaitsAbove(0, kBound));
  EXPECT_EQ(TotalLoads(), 0);
  clock_.Advance(absl::Minutes(59));
  ASSERT_TRUE(clock_.WaitForWaitsAbove(1, kBound));
  EXPECT_EQ(TotalLoads(), 0);
  clock_.Advance(absl::Minutes(1));
  ASSERT_TRUE(log_.WaitFor("a", true, kBound));
  EXPECT_EQ(Loads(VersionDir("a", 1) + "/model.pbtxt"), 1);
}

TEST_F(RepositoryWatcherTest, DestructorStopsThePollingThreadWithoutWaiting) {
  RepositoryWatcher::Options options = DefaultOptions();
  options.poll_interval = absl::Hours(1);
  options.clock = &clock_;
  MakeWatcher(std::move(options));
  watcher_->Start();
  ASSERT_TRUE(clock_.WaitForWaitsAbove(0, kBound));
  // The clock never moves: only the stop can wake the thread.
  watcher_.reset();
  EXPECT_EQ(TotalLoads(), 0);
}

TEST_F(RepositoryWatcherTest, DestructorWithoutStartReturns) {
  MakeWatcher();
  watcher_.reset();
  SUCCEED();
}

// --- Precision ---

// The precision each load of a model file asked for, in order, by path.
class PrecisionRecorder {
 public:
  // A loader for Options::load_model: records the precision asked for,
  // then calls `load` (FakeLoad, which counts the load).
  std::function<absl::StatusOr<std::shared_ptr<const Model>>(const std::string&,
                                                             Precision)>
  Loader(std::function<
         absl::StatusOr<std::shared_ptr<const Model>>(const std::string&)>
             load) {
    return [this, load](const std::string& path, Precision precision) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        asked_[path].push_back(precision);
      }
      return load(path);
    };
  }
  std::vector<Precision> Asked(const std::string& path) {
    std::lock_guard<std::mutex> lock(mu_);
    return asked_[path];
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::vector<Precision>> asked_;  // guarded by mu_
};

TEST_F(RepositoryWatcherTest, ConfigPrecisionReachesTheLoaderElseTheDefault) {
  const std::string bf16 = WriteModel("bf16", 1, "bf16");
  WriteConfig("bf16", "precision: BF16\n");
  const std::string fp32 = WriteModel("fp32", 1, "fp32");
  WriteConfig("fp32", "precision: FP32\n");
  const std::string none = WriteModel("none", 1, "none");  // no config.pbtxt
  const std::string other = WriteModel("other", 1, "other");
  WriteConfig("other", "version_policy { all {} }\n");  // no precision
  for (Precision default_precision : {Precision::kFp32, Precision::kBf16}) {
    SCOPED_TRACE(PrecisionName(default_precision));
    PrecisionRecorder recorder;
    RepositoryWatcher::Options options = DefaultOptions();
    options.default_precision = default_precision;
    options.load_model = recorder.Loader(
        [this](const std::string& path) { return FakeLoad(path); });
    watcher_.reset();
    MakeWatcher(std::move(options));
    watcher_->PollOnce();
    EXPECT_THAT(recorder.Asked(bf16), ElementsAre(Precision::kBf16));
    EXPECT_THAT(recorder.Asked(fp32), ElementsAre(Precision::kFp32));
    EXPECT_THAT(recorder.Asked(none), ElementsAre(default_precision));
    EXPECT_THAT(recorder.Asked(other), ElementsAre(default_precision));
  }
}

TEST_F(RepositoryWatcherTest, ChangingTheConfigPrecisionReloadsOnlyThen) {
  const std::string path = WriteModel("m", 1, "one");
  const std::string config = absl::StrCat(root_, "/m/config.pbtxt");
  WriteConfig("m", "precision: FP32\n");
  PrecisionRecorder recorder;
  RepositoryWatcher::Options options = DefaultOptions();
  options.load_model = recorder.Loader(
      [this](const std::string& file) { return FakeLoad(file); });
  MakeWatcher(std::move(options));
  watcher_->PollOnce();
  watcher_->PollOnce();  // nothing changed: no reload
  EXPECT_THAT(recorder.Asked(path), ElementsAre(Precision::kFp32));
  EXPECT_EQ(Loads(path), 1);

  // The same size as before: the new modification time tells it apart.
  WriteConfig("m", "precision: BF16\n");
  Touch(config);
  watcher_->PollOnce();
  EXPECT_THAT(recorder.Asked(path),
              ElementsAre(Precision::kFp32, Precision::kBf16));
  EXPECT_EQ(Loads(path), 2);
  EXPECT_EQ(Word("m"), "one");
  EXPECT_THAT(States("m"), ElementsAre(Pair(1, VersionState::kAvailable)));
  watcher_->PollOnce();
  EXPECT_EQ(Loads(path), 2);

  // A config change that keeps the precision re-reads the config only.
  WriteConfig("m", "precision: BF16\nbatching { max_batch_size: 4 }\n");
  watcher_->PollOnce();
  EXPECT_EQ(Loads(path), 2);

  // No config any more: the default (FP32) again, so one more load.
  fs::remove(config);
  watcher_->PollOnce();
  EXPECT_THAT(
      recorder.Asked(path),
      ElementsAre(Precision::kFp32, Precision::kBf16, Precision::kFp32));
  EXPECT_EQ(Loads(path), 3);
}

// --- Memory ---

// This process's resident set, in bytes, from /proc/self/status.
int64_t ResidentBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) != 0) continue;
    int64_t kb = 0;
    std::string digits;
    for (char c : line) {
      if (absl::ascii_isdigit(c)) digits.push_back(c);
    }
    if (absl::SimpleAtoi(digits, &kb)) return kb * 1024;
  }
  ADD_FAILURE() << "no VmRSS in /proc/self/status";
  return 0;
}

void RandomTensor(std::mt19937& rng, std::vector<int64_t> shape,
                  v1::Tensor* tensor) {
  const Tensor values = testing::RandomWeights(rng, shape);
  tensor->mutable_shape()->Assign(shape.begin(), shape.end());
  tensor->mutable_values()->Assign(values.values.begin(), values.values.end());
}

// Bidirectional(LSTM 256, sequences) -> Bidirectional(LSTM 256) on 256
// features: 10 MiB of weights (see the test below).
v1::Model BigLstmModel() {
  std::mt19937 rng(17);
  v1::Model model;
  model.set_name("big");
  model.set_input_dim(256);
  int input = 256;
  for (int l = 0; l < 2; ++l) {
    v1::BidirectionalLayer* bidi = model.add_layers()->mutable_bidirectional();
    bidi->set_name(absl::StrCat("bidirectional_", l));
    v1::RnnLayer* layer = bidi->mutable_layer();
    layer->set_cell(v1::LSTM);
    layer->set_units(256);
    layer->set_return_sequences(l == 0);
    for (v1::RnnWeights* w :
         {layer->mutable_weights(), bidi->mutable_backward_weights()}) {
      RandomTensor(rng, {input, 1024}, w->mutable_kernel());
      RandomTensor(rng, {256, 1024}, w->mutable_recurrent_kernel());
      RandomTensor(rng, {1024}, w->mutable_bias());
    }
    input = 512;  // concat of 256 + 256
  }
  return model;
}

// Bytes a loaded Model holds in weights, packed copies included.
int64_t ModelBytes(const Model& model) {
  int64_t floats = 0;
  for (const StackLayer& layer : model.layers()) {
    const auto* bidi = std::get_if<BidirectionalLayer>(&layer);
    if (bidi == nullptr) continue;
    for (const RnnDirection* d : {&bidi->forward, &bidi->backward}) {
      floats += d->kernel.size() + d->recurrent_kernel.size() +
                d->input_bias.size() + d->recurrent_bias.size();
      floats += d->recurrent_packed.rows() * d->recurrent_packed.padded_cols();
      floats += d->kernel_packed.rows() * d->kernel_packed.padded_cols();
    }
  }
  return floats * static_cast<int64_t>(sizeof(float));
}

TEST_F(RepositoryWatcherTest, ReloadingTheSameModel100TimesLeavesMemoryFlat) {
  // The process is as tests leave it: no PrepareProcessForEvaluation (which
  // would keep large blocks in the heap), so glibc's defaults apply and the
  // watcher's ReleaseFreeMemory (malloc_trim) after each replacement is what
  // returns a replaced copy's pages.
  const std::string path = absl::StrCat(root_, "/big/1/model.pb");
  {
    std::string bytes;
    ASSERT_TRUE(BigLstmModel().SerializeToString(&bytes));
    WriteText(path, bytes);
  }
  auto pool = ThreadPool::Create({});
  ASSERT_TRUE(pool.ok());
  int loads = 0;
  RepositoryWatcher::Options options = DefaultOptions();
  options.load_model = [&loads](const std::string& file, Precision precision) {
    ++loads;
    return LoadModelFile(file, precision);
  };
  ThreadPool* pool_ptr = pool->get();
  options.warm_up = [pool_ptr](const Model& model) {
    return WarmUp(model, *pool_ptr);
  };
  MakeWatcher(std::move(options));
  watcher_->PollOnce();
  ASSERT_EQ(loads, 1);

  int64_t model_bytes = 0;
  {
    absl::StatusOr<ServableModel> servable = registry_->Get("big", 0);
    ASSERT_TRUE(servable.ok()) << servable.status();
    model_bytes = ModelBytes(*servable->model);
  }
  // Weights: 2 directions x (256 x 1024 + 256 x 1024 + 1024) floats in
  // layer 0 and 2 x (512 x 1024 + 256 x 1024 + 1024) in layer 1: 10.0 MiB.
  // Packed copies add 4 MiB of recurrent kernels and 6 MiB of input
  // kernels: 20 MiB in all.
  ASSERT_GE(model_bytes, 20 << 20);
  ASSERT_LE(model_bytes, 21 << 20);

  auto reload = [&](int times) {
    for (int i = 0; i < times; ++i) {
      Touch(path);
      const int before = loads;
      watcher_->PollOnce();
      ASSERT_EQ(loads, before + 1) << "the touched file was not reloaded";
    }
  };
  reload(10);
  ASSERT_EQ(Word("big"), "big");
  const int64_t after_10 = ResidentBytes();
  reload(90);
  ASSERT_EQ(Word("big"), "big");
  const int64_t after_100 = ResidentBytes();

  // 90 leaked copies would add 90 x model_bytes (0.9 to 1.8 GiB). Allow
  // the growth of 3 copies (30 to 60 MiB) for heap fragmentation and lazily
  // faulted library state: 1/30 of what the leak would cost.
  const int64_t growth = after_100 - after_10;
  EXPECT_LT(growth, 3 * model_bytes)
      << "resident memory grew by " << growth / (1 << 20) << " MiB over 90 "
      << "reloads of a " << model_bytes / (1 << 20) << " MiB model (from "
      << after_10 / (1 << 20) << " to " << after_100 / (1 << 20) << " MiB)";
  EXPECT_THAT(States("big"), ElementsAre(Pair(1, VersionState::kAvailable)));
}

}  // namespace
}  // namespace biserve
