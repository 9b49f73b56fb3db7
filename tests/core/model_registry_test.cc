#include "core/serving/model_registry.h"

#include <atomic>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/model/model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/random_model.h"
#include "tests/support/registry_test_util.h"

namespace biserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;

// A small valid model named `name`, from a fixed seed.
std::shared_ptr<const Model> MakeModel(const std::string& name) {
  std::mt19937 rng(7);
  ModelSpec spec = testing::RandomModelSpec(rng);
  spec.name = name;
  absl::StatusOr<std::shared_ptr<const Model>> model = Model::Create(spec);
  EXPECT_TRUE(model.ok()) << model.status();
  return *model;
}

class ModelRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ModelRegistry::Options options;
    options.default_batching.max_batch_size = 5;
    options.default_batching.max_queue_size = 11;
    options.on_serving_change = [this](const std::string& model, bool serving) {
      log_.Record(model, serving);
    };
    auto registry = ModelRegistry::Create(std::move(options));
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_ = *std::move(registry);
  }

  // The status of `name`, or a failure if it is not listed.
  ModelStatus StatusOf(const std::string& name) {
    std::optional<ModelStatus> status = testing::FindStatus(*registry_, name);
    if (!status.has_value()) ADD_FAILURE() << name << " is not listed";
    return status.value_or(ModelStatus{});
  }

  // (version, state) pairs of `name`.
  std::vector<std::pair<int64_t, VersionState>> States(
      const std::string& name) {
    return testing::VersionStates(StatusOf(name));
  }

  std::vector<std::string> ListedNames() {
    return testing::ListedNames(*registry_);
  }

  // The version Get(name, version) serves, or its error.
  std::string ServedVersion(const std::string& name, int64_t version) {
    absl::StatusOr<ServableModel> servable = registry_->Get(name, version);
    if (!servable.ok()) return servable.status().ToString();
    return absl::StrCat(servable->version);
  }

  testing::ServingLog log_;
  std::unique_ptr<ModelRegistry> registry_;
};

TEST(ModelRegistryCreateTest, RejectsInvalidDefaultBatching) {
  ModelRegistry::Options options;
  options.default_batching.max_batch_size = 0;
  auto registry = ModelRegistry::Create(std::move(options));
  EXPECT_EQ(registry.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(registry.status().message()),
              HasSubstr("default batching: max_batch_size"));
}

TEST(ModelRegistryCreateTest, WorksWithoutAServingListener) {
  auto registry = ModelRegistry::Create({});
  ASSERT_TRUE(registry.ok()) << registry.status();
  (*registry)->SetAvailable("m", 1, MakeModel("v1"));
  (*registry)->Unload("m", 1);
  EXPECT_FALSE((*registry)->IsServing("m"));
}

// A version's metric handles: the factory's, one per load.
struct FakeVersionMetrics : VersionMetrics {
  FakeVersionMetrics(std::string model, int64_t version)
      : model(std::move(model)), version(version) {}
  std::string model;
  int64_t version;
};

TEST(ModelRegistryVersionMetricsTest, EveryRequestCarriesItsVersionsHandles) {
  std::vector<std::pair<std::string, int64_t>> made;
  auto registry = ModelRegistry::Create(
      {.version_metrics = [&made](const std::string& model, int64_t version) {
        made.emplace_back(model, version);
        return std::make_shared<FakeVersionMetrics>(model, version);
      }});
  ASSERT_TRUE(registry.ok()) << registry.status();
  (*registry)->SetLoading("m", 1);
  EXPECT_THAT(made, IsEmpty());  // not before it serves
  (*registry)->SetAvailable("m", 1, MakeModel("m"));
  (*registry)->SetAvailable("m", 2, MakeModel("m"));
  EXPECT_THAT(made, ElementsAre(Pair("m", 1), Pair("m", 2)));
  for (int64_t asked : {0, 1, 2}) {
    absl::StatusOr<ServableModel> servable = (*registry)->Get("m", asked);
    ASSERT_TRUE(servable.ok()) << servable.status();
    const auto* handles =
        dynamic_cast<const FakeVersionMetrics*>(servable->metrics.get());
    ASSERT_NE(handles, nullptr);
    EXPECT_EQ(handles->model, "m");
    EXPECT_EQ(handles->version, servable->version);
  }
  // A reload asks again (the factory decides whether to reuse them).
  (*registry)->SetAvailable("m", 2, MakeModel("m"));
  EXPECT_EQ(made.size(), 3u);
}

TEST(ModelRegistryVersionMetricsTest, WithoutAFactoryRequestsCarryNone) {
  auto registry = ModelRegistry::Create({});
  ASSERT_TRUE(registry.ok()) << registry.status();
  (*registry)->SetAvailable("m", 1, MakeModel("m"));
  absl::StatusOr<ServableModel> servable = (*registry)->Get("m", 0);
  ASSERT_TRUE(servable.ok()) << servable.status();
  EXPECT_EQ(servable->metrics, nullptr);
}

TEST(VersionStateNameTest, NamesEveryState) {
  EXPECT_EQ(VersionStateName(VersionState::kLoading), "loading");
  EXPECT_EQ(VersionStateName(VersionState::kAvailable), "available");
  EXPECT_EQ(VersionStateName(VersionState::kFailed), "failed");
  EXPECT_EQ(VersionStateName(VersionState::kUnloading), "unloading");
}

TEST_F(ModelRegistryTest, UnknownModelIsNotFoundAndNamesTheServedModels) {
  registry_->SetAvailable("alpha", 1, MakeModel("a"));
  registry_->SetAvailable("beta", 1, MakeModel("b"));
  absl::StatusOr<ServableModel> got = registry_->Get("gamma", 0);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("'gamma'"));
  EXPECT_THAT(std::string(got.status().message()),
              HasSubstr("models served: 'alpha', 'beta'"));
}

TEST_F(ModelRegistryTest, UnknownModelsHugeNameIsQuotedCutAndEscaped) {
  // Reported: a 100,000-character name came back whole, beyond a client's
  // 8 KB metadata limit, so the client saw RESOURCE_EXHAUSTED instead.
  registry_->SetAvailable("alpha", 1, MakeModel("a"));
  const std::string huge = std::string(100000, 'x') + "\n\xff";
  for (int64_t version : {0, 1, 7}) {
    absl::StatusOr<ServableModel> got = registry_->Get(huge, version);
    EXPECT_EQ(got.status().code(), absl::StatusCode::kNotFound);
    const std::string message(got.status().message());
    EXPECT_LT(message.size(), 1000u) << version;
    EXPECT_THAT(message, HasSubstr(absl::StrCat(
                             "model '", std::string(100, 'x'),
                             "'... (100002 bytes) is not in the repository")));
  }
  // Escaped when short, too: the message stays valid UTF-8.
  absl::StatusOr<ServableModel> got = registry_->Get("a\nb\xff", 0);
  EXPECT_THAT(std::string(got.status().message()),
              HasSubstr("model 'a\\nb\\xff' is not"));
}

TEST_F(ModelRegistryTest, ClientNamesAreQuotedInEveryStateMessage) {
  registry_->SetLoading("m\n", 1);
  registry_->SetFailed("f\n", 1, "bad weights");
  registry_->SetAvailable("a\n", 1, MakeModel("a"));
  registry_->SetModelSettings("e\n", ModelConfig(), "");
  EXPECT_THAT(std::string(registry_->Get("m\n", 0).status().message()),
              HasSubstr("model 'm\\n' is loading"));
  EXPECT_THAT(std::string(registry_->Get("m\n", 1).status().message()),
              HasSubstr("of model 'm\\n' is loading"));
  EXPECT_THAT(std::string(registry_->Get("f\n", 0).status().message()),
              HasSubstr("model 'f\\n' has no loadable version"));
  EXPECT_THAT(std::string(registry_->Get("f\n", 1).status().message()),
              HasSubstr("of model 'f\\n' failed to load"));
  EXPECT_THAT(std::string(registry_->Get("a\n", 2).status().message()),
              HasSubstr("of model 'a\\n' is not served"));
  EXPECT_THAT(std::string(registry_->Get("e\n", 0).status().message()),
              HasSubstr("model 'e\\n' has no version to serve"));
}

TEST_F(ModelRegistryTest, ListsInMessagesAreBounded) {
  for (int i = 0; i < 25; ++i) {
    registry_->SetAvailable(absl::StrCat("model", 10 + i), 1, MakeModel("m"));
  }
  absl::StatusOr<ServableModel> got = registry_->Get("nope", 0);
  EXPECT_THAT(std::string(got.status().message()),
              HasSubstr("'model28', 'model29' and 5 more"));
  EXPECT_THAT(std::string(got.status().message()),
              ::testing::Not(HasSubstr("'model30'")));

  std::shared_ptr<const Model> model = MakeModel("v");
  for (int v = 1; v <= 30; ++v) registry_->SetAvailable("many", v, model);
  got = registry_->Get("many", 99);
  EXPECT_THAT(std::string(got.status().message()),
              HasSubstr("available versions: 1, 2, "));
  EXPECT_THAT(std::string(got.status().message()),
              HasSubstr(", 19, 20 and 10 more"));

  for (int v = 1; v <= 8; ++v) {
    registry_->SetFailed("broken", v, absl::StrCat("reason ", v));
  }
  got = registry_->Get("broken", 0);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(got.status().message()),
              HasSubstr("version 5: reason 5 and 3 more"));
}

TEST_F(ModelRegistryTest, UnknownModelInAnEmptyRegistrySaysNone) {
  absl::StatusOr<ServableModel> got = registry_->Get("gamma", 0);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(got.status().message()),
              HasSubstr("models served: none"));
}

TEST_F(ModelRegistryTest, VersionZeroGetsTheNewestAvailableVersion) {
  std::shared_ptr<const Model> v1 = MakeModel("v1");
  std::shared_ptr<const Model> v2 = MakeModel("v2");
  registry_->SetAvailable("m", 1, v1);
  registry_->SetAvailable("m", 2, v2);
  absl::StatusOr<ServableModel> newest = registry_->Get("m", 0);
  ASSERT_TRUE(newest.ok()) << newest.status();
  EXPECT_EQ(newest->name, "m");
  EXPECT_EQ(newest->version, 2);
  EXPECT_EQ(newest->model, v2);
  absl::StatusOr<ServableModel> first = registry_->Get("m", 1);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->version, 1);
  EXPECT_EQ(first->model, v1);
}

TEST_F(ModelRegistryTest, VersionZeroSkipsNewerVersionsThatAreNotAvailable) {
  registry_->SetAvailable("m", 1, MakeModel("v1"));
  registry_->SetFailed("m", 2, "bad weights");
  registry_->SetLoading("m", 3);
  absl::StatusOr<ServableModel> got = registry_->Get("m", 0);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->version, 1);
}

TEST_F(ModelRegistryTest, UnknownVersionIsNotFoundAndNamesAvailableVersions) {
  registry_->SetAvailable("m", 1, MakeModel("v1"));
  registry_->SetAvailable("m", 3, MakeModel("v3"));
  absl::StatusOr<ServableModel> got = registry_->Get("m", 2);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(got.status().message()),
              HasSubstr("version 2 of model 'm'"));
  EXPECT_THAT(std::string(got.status().message()),
              HasSubstr("available versions: 1, 3"));
}

TEST_F(ModelRegistryTest, LoadingModelIsUnavailable) {
  registry_->SetLoading("m", 1);
  absl::StatusOr<ServableModel> newest = registry_->Get("m", 0);
  EXPECT_EQ(newest.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(newest.status().message()),
              HasSubstr("loading (version 1)"));
  absl::StatusOr<ServableModel> exact = registry_->Get("m", 1);
  EXPECT_EQ(exact.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(exact.status().message()), HasSubstr("retry"));
  EXPECT_THAT(States("m"), ElementsAre(Pair(1, VersionState::kLoading)));
}

TEST_F(ModelRegistryTest, ModelWhoseVersionsAllFailedIsFailedPrecondition) {
  registry_->SetFailed("m", 1, "kernel has shape [3, 4]");
  registry_->SetFailed("m", 2, "file truncated");
  absl::StatusOr<ServableModel> newest = registry_->Get("m", 0);
  EXPECT_EQ(newest.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(newest.status().message()),
              HasSubstr("version 1: kernel has shape [3, 4]"));
  EXPECT_THAT(std::string(newest.status().message()),
              HasSubstr("version 2: file truncated"));
  absl::StatusOr<ServableModel> exact = registry_->Get("m", 2);
  EXPECT_EQ(exact.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(exact.status().message()),
              HasSubstr("version 2 of model 'm' failed to load: "
                        "file truncated"));
}

TEST_F(ModelRegistryTest, FailedVersionShowsItsReasonInList) {
  registry_->SetFailed("m", 1, "no such file");
  const ModelStatus status = StatusOf("m");
  ASSERT_EQ(status.versions.size(), 1u);
  EXPECT_EQ(status.versions[0].state, VersionState::kFailed);
  EXPECT_EQ(status.versions[0].reason, "no such file");
}

TEST_F(ModelRegistryTest, ModelWithNoVersionIsNotFound) {
  registry_->SetModelSettings("m", ModelConfig(), "");
  absl::StatusOr<ServableModel> got = registry_->Get("m", 0);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(got.status().message()),
              HasSubstr("no version to serve"));
}

TEST_F(ModelRegistryTest, ReloadKeepsServingWhileLoading) {
  std::shared_ptr<const Model> v1 = MakeModel("v1");
  registry_->SetAvailable("m", 1, v1);
  registry_->SetLoading("m", 1);
  absl::StatusOr<ServableModel> got = registry_->Get("m", 1);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->model, v1);
  EXPECT_THAT(States("m"), ElementsAre(Pair(1, VersionState::kAvailable)));
}

TEST_F(ModelRegistryTest, FailedReloadKeepsServingTheLoadedCopyWithAReason) {
  std::shared_ptr<const Model> v1 = MakeModel("v1");
  registry_->SetAvailable("m", 1, v1);
  registry_->SetFailed("m", 1, "truncated");
  absl::StatusOr<ServableModel> got = registry_->Get("m", 1);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->model, v1);
  const ModelStatus status = StatusOf("m");
  ASSERT_EQ(status.versions.size(), 1u);
  EXPECT_EQ(status.versions[0].state, VersionState::kAvailable);
  EXPECT_EQ(status.versions[0].reason,
            "reload failed, still serving the loaded copy: truncated");
}

TEST_F(ModelRegistryTest, SuccessfulReloadReplacesTheModelAndClearsTheReason) {
  registry_->SetAvailable("m", 1, MakeModel("old"));
  registry_->SetFailed("m", 1, "truncated");
  std::shared_ptr<const Model> fresh = MakeModel("new");
  registry_->SetAvailable("m", 1, fresh);
  absl::StatusOr<ServableModel> got = registry_->Get("m", 1);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->model, fresh);
  EXPECT_EQ(StatusOf("m").versions[0].reason, "");
}

TEST_F(ModelRegistryTest, UnloadedVersionStaysUnloadingUntilItsLastUserDrops) {
  registry_->SetAvailable("m", 1, MakeModel("v1"));
  absl::StatusOr<ServableModel> held = registry_->Get("m", 1);
  ASSERT_TRUE(held.ok()) << held.status();
  std::weak_ptr<const Model> watch = held->model;
  registry_->SetAvailable("m", 2, MakeModel("v2"));

  registry_->Unload("m", 1);
  EXPECT_THAT(States("m"), ElementsAre(Pair(1, VersionState::kUnloading),
                                       Pair(2, VersionState::kAvailable)));
  absl::StatusOr<ServableModel> again = registry_->Get("m", 1);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(again.status().message()),
              HasSubstr("available versions: 2"));
  EXPECT_EQ(registry_->Get("m", 0)->version, 2);
  // The request that pinned version 1 still has a whole, usable model.
  EXPECT_EQ(held->model->name(), "v1");
  EXPECT_GE(held->model->bidirectional_count(), 1);
  EXPECT_EQ(registry_->CollectUnloaded(), 0);
  EXPECT_THAT(States("m"), ElementsAre(Pair(1, VersionState::kUnloading),
                                       Pair(2, VersionState::kAvailable)));

  held->model.reset();
  EXPECT_TRUE(watch.expired()) << "the registry kept a strong reference";
  EXPECT_EQ(registry_->CollectUnloaded(), 1);
  EXPECT_THAT(States("m"), ElementsAre(Pair(2, VersionState::kAvailable)));
  EXPECT_EQ(registry_->CollectUnloaded(), 0);
}

TEST_F(ModelRegistryTest, UnloadedVersionWithoutUsersIsForgottenAtOnce) {
  std::shared_ptr<const Model> model = MakeModel("v1");
  std::weak_ptr<const Model> watch = model;
  registry_->SetAvailable("m", 1, std::move(model));
  registry_->SetAvailable("m", 2, MakeModel("v2"));
  registry_->Unload("m", 1);
  EXPECT_TRUE(watch.expired());
  EXPECT_THAT(States("m"), ElementsAre(Pair(2, VersionState::kAvailable)));
}

TEST_F(ModelRegistryTest, UnloadForgetsFailedAndLoadingVersionsAtOnce) {
  registry_->SetFailed("m", 1, "bad");
  registry_->SetLoading("m", 2);
  registry_->SetAvailable("m", 3, MakeModel("v3"));
  registry_->Unload("m", 1);
  registry_->Unload("m", 2);
  EXPECT_THAT(States("m"), ElementsAre(Pair(3, VersionState::kAvailable)));
}

TEST_F(ModelRegistryTest, UnloadOfAnUnknownVersionChangesNothing) {
  registry_->SetAvailable("m", 1, MakeModel("v1"));
  registry_->Unload("m", 7);
  EXPECT_THAT(States("m"), ElementsAre(Pair(1, VersionState::kAvailable)));
}

TEST_F(ModelRegistryTest, UnloadingTwiceKeepsTrackingTheUser) {
  registry_->SetAvailable("m", 1, MakeModel("v1"));
  absl::StatusOr<ServableModel> held = registry_->Get("m", 1);
  ASSERT_TRUE(held.ok());
  registry_->Unload("m", 1);
  registry_->Unload("m", 1);
  EXPECT_THAT(States("m"), ElementsAre(Pair(1, VersionState::kUnloading)));
  held->model.reset();
  EXPECT_EQ(registry_->CollectUnloaded(), 1);
}

TEST_F(ModelRegistryTest, ServingListenerHearsOfFirstAvailableAndLastGone) {
  registry_->SetModelSettings("m", ModelConfig(), "");
  // Appearing, not serving: told once.
  EXPECT_THAT(log_.events(), ElementsAre(Pair("m", false)));
  registry_->SetLoading("m", 1);
  registry_->SetFailed("m", 2, "bad");
  EXPECT_THAT(log_.events(), ElementsAre(Pair("m", false)));

  registry_->SetAvailable("m", 1, MakeModel("v1"));
  EXPECT_THAT(log_.events(), ElementsAre(Pair("m", false), Pair("m", true)));
  registry_->SetAvailable("m", 3, MakeModel("v3"));
  registry_->SetLoading("m", 3);  // a reload
  registry_->SetFailed("m", 3, "reload failed");
  registry_->Unload("m", 1);
  EXPECT_THAT(log_.events(), ElementsAre(Pair("m", false), Pair("m", true)));

  registry_->Unload("m", 3);
  EXPECT_THAT(log_.events(),
              ElementsAre(Pair("m", false), Pair("m", true), Pair("m", false)));
}

TEST_F(ModelRegistryTest, ModelThatAppearsFailedIsToldNotServing) {
  // Reported: a model added at run time whose every version failed was
  // unknown to the health service (NOT_FOUND) instead of NOT_SERVING.
  registry_->SetFailed("broken", 1, "bad weights");
  registry_->SetFailed("broken", 2, "bad weights");
  EXPECT_THAT(log_.events(), ElementsAre(Pair("broken", false)));
  registry_->SetLoading("loading", 1);
  EXPECT_THAT(log_.events(),
              ElementsAre(Pair("broken", false), Pair("loading", false)));
}

TEST_F(ModelRegistryTest, ModelThatAppearsServingIsToldServingOnce) {
  registry_->SetAvailable("m", 1, MakeModel("v1"));
  EXPECT_THAT(log_.events(), ElementsAre(Pair("m", true)));
}

TEST_F(ModelRegistryTest, ServingListenerIsPerModel) {
  registry_->SetAvailable("a", 1, MakeModel("a"));
  registry_->SetAvailable("b", 1, MakeModel("b"));
  registry_->RemoveModel("a");
  EXPECT_THAT(log_.events(),
              ElementsAre(Pair("a", true), Pair("b", true), Pair("a", false)));
}

TEST_F(ModelRegistryTest, ListenerMayCallBackIntoTheRegistry) {
  // The listener runs outside the lock: reading the registry from it must
  // not deadlock.
  ModelRegistry* registry = nullptr;
  std::vector<bool> seen;
  ModelRegistry::Options options;
  options.on_serving_change = [&](const std::string& model, bool serving) {
    seen.push_back(registry->IsServing(model));
  };
  auto created = ModelRegistry::Create(std::move(options));
  ASSERT_TRUE(created.ok());
  registry = created->get();
  registry->SetAvailable("m", 1, MakeModel("v1"));
  registry->Unload("m", 1);
  EXPECT_THAT(seen, ElementsAre(true, false));
}

TEST_F(ModelRegistryTest, RemovedModelIsNotFoundAndForgottenWhenUnused) {
  registry_->SetModelSettings("m", ModelConfig(), "");
  registry_->SetAvailable("m", 1, MakeModel("v1"));
  registry_->SetFailed("m", 2, "bad");
  registry_->SetAvailable("other", 1, MakeModel("o"));

  registry_->RemoveModel("m");
  absl::StatusOr<ServableModel> got = registry_->Get("m", 0);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(got.status().message()),
              HasSubstr("models served: 'other'"));
  EXPECT_THAT(ListedNames(), ElementsAre("other"));
  EXPECT_FALSE(registry_->IsServing("m"));
  EXPECT_THAT(registry_->AvailableVersions("m"), IsEmpty());
}

TEST_F(ModelRegistryTest, RemovedModelInUseStaysListedAsUnloadingUntilDropped) {
  registry_->SetAvailable("m", 1, MakeModel("v1"));
  absl::StatusOr<ServableModel> held = registry_->Get("m", 1);
  ASSERT_TRUE(held.ok());

  registry_->RemoveModel("m");
  EXPECT_EQ(registry_->Get("m", 0).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(registry_->Get("m", 1).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_THAT(States("m"), ElementsAre(Pair(1, VersionState::kUnloading)));
  EXPECT_EQ(held->model->name(), "v1");

  held->model.reset();
  EXPECT_EQ(registry_->CollectUnloaded(), 1);
  EXPECT_THAT(ListedNames(), IsEmpty());
}

TEST_F(ModelRegistryTest, RemovingAnUnknownModelChangesNothing) {
  registry_->RemoveModel("nope");
  EXPECT_THAT(ListedNames(), IsEmpty());
  EXPECT_THAT(log_.events(), IsEmpty());
}

TEST_F(ModelRegistryTest, RemovedModelComesBackWhenItsSettingsAreSetAgain) {
  registry_->SetModelSettings("m", ModelConfig(), "");
  registry_->SetAvailable("m", 1, MakeModel("v1"));
  registry_->RemoveModel("m");
  registry_->SetModelSettings("m", ModelConfig(), "");
  registry_->SetAvailable("m", 2, MakeModel("v2"));
  absl::StatusOr<ServableModel> got = registry_->Get("m", 0);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->version, 2);
}

TEST_F(ModelRegistryTest, ServableCarriesDefaultsWithTheModelsOverrides) {
  ModelConfig config;
  config.version_policy.kind = VersionPolicy::Kind::kAll;
  config.batching.max_batch_steps = 99;
  registry_->SetModelSettings("m", config, "");
  registry_->SetAvailable("m", 1, MakeModel("v1"));
  absl::StatusOr<ServableModel> got = registry_->Get("m", 1);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->batching.max_batch_steps, 99);  // the model's override
  EXPECT_EQ(got->batching.max_batch_size, 5);    // the registry's default
  EXPECT_EQ(got->batching.max_queue_size, 11);   // the registry's default
  EXPECT_EQ(got->batching.max_queue_delay_us,
            BatchingOptions().max_queue_delay_us);
}

TEST_F(ModelRegistryTest, ModelWithoutSettingsGetsTheRegistrysDefaults) {
  registry_->SetAvailable("m", 1, MakeModel("v1"));
  absl::StatusOr<ServableModel> got = registry_->Get("m", 1);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->batching.max_batch_size, 5);
  EXPECT_EQ(got->batching.max_queue_size, 11);
}

TEST_F(ModelRegistryTest, NewSettingsApplyToTheNextGet) {
  registry_->SetAvailable("m", 1, MakeModel("v1"));
  ModelConfig config;
  config.batching.max_batch_size = 2;
  registry_->SetModelSettings("m", config, "");
  EXPECT_EQ(registry_->Get("m", 1)->batching.max_batch_size, 2);
}

TEST_F(ModelRegistryTest, ListShowsPolicyConfigErrorAndVersionsAscending) {
  ModelConfig config;
  config.version_policy.kind = VersionPolicy::Kind::kLatest;
  config.version_policy.num_versions = 2;
  const absl::Time before = absl::Now();
  registry_->SetModelSettings("m", config, "config.pbtxt: line 1: oops");
  registry_->SetAvailable("m", 3, MakeModel("v3"));
  registry_->SetLoading("m", 1);
  registry_->SetFailed("m", 2, "bad");
  const absl::Time after = absl::Now();

  const ModelStatus status = StatusOf("m");
  EXPECT_EQ(status.version_policy, "latest:2");
  EXPECT_EQ(status.config_error, "config.pbtxt: line 1: oops");
  ASSERT_EQ(status.versions.size(), 3u);
  EXPECT_EQ(status.versions[0].version, 1);
  EXPECT_EQ(status.versions[0].state, VersionState::kLoading);
  EXPECT_EQ(status.versions[1].version, 2);
  EXPECT_EQ(status.versions[1].state, VersionState::kFailed);
  EXPECT_EQ(status.versions[2].version, 3);
  EXPECT_EQ(status.versions[2].state, VersionState::kAvailable);
  for (const VersionStatus& v : status.versions) {
    EXPECT_GE(v.since, before);
    EXPECT_LE(v.since, after);
  }
}

TEST_F(ModelRegistryTest, ListIsSortedByModelName) {
  registry_->SetAvailable("zeta", 1, MakeModel("z"));
  registry_->SetAvailable("alpha", 1, MakeModel("a"));
  EXPECT_THAT(ListedNames(), ElementsAre("alpha", "zeta"));
}

TEST_F(ModelRegistryTest, AvailableVersionsAndIsServingFollowStates) {
  EXPECT_FALSE(registry_->IsServing("m"));
  registry_->SetLoading("m", 4);
  EXPECT_FALSE(registry_->IsServing("m"));
  registry_->SetAvailable("m", 3, MakeModel("v3"));
  registry_->SetAvailable("m", 1, MakeModel("v1"));
  registry_->SetFailed("m", 2, "bad");
  EXPECT_TRUE(registry_->IsServing("m"));
  EXPECT_THAT(registry_->AvailableVersions("m"), ElementsAre(1, 3));
  EXPECT_THAT(registry_->AvailableVersions("unknown"), IsEmpty());
}

// The fallback (SetSelection): the version that keeps a model answering
// while none its policy selects serves.

constexpr absl::string_view kFallbackReason =
    "fallback: serves requests that name no version until a version "
    "selected by the policy loads";

TEST_F(ModelRegistryTest, FallbackAnswersOnlyRequestsThatNameNoVersion) {
  registry_->SetModelSettings("m", ModelConfig(), "");  // latest
  std::shared_ptr<const Model> v1 = MakeModel("v1");
  registry_->SetAvailable("m", 1, v1);
  registry_->SetFailed("m", 2, "bad weights");
  registry_->SetSelection("m", {2}, 1);

  absl::StatusOr<ServableModel> unnamed = registry_->Get("m", 0);
  ASSERT_TRUE(unnamed.ok()) << unnamed.status();
  EXPECT_EQ(unnamed->version, 1);
  EXPECT_EQ(unnamed->model, v1);
  absl::StatusOr<ServableModel> named = registry_->Get("m", 1);
  EXPECT_EQ(named.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(named.status().message(),
            "model 'm' version 1 is not served under its version policy "
            "latest (it only answers requests that name no version while "
            "version 2 has failed)");
  EXPECT_EQ(registry_->Get("m", 2).status().code(),
            absl::StatusCode::kFailedPrecondition);
  absl::StatusOr<ServableModel> unknown = registry_->Get("m", 7);
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(unknown.status().message()),
              HasSubstr("available versions: none"));
  // It serves (health), but is not a version a client may name.
  EXPECT_TRUE(registry_->IsServing("m"));
  EXPECT_THAT(registry_->AvailableVersions("m"), IsEmpty());
  const ModelStatus status = StatusOf("m");
  ASSERT_EQ(status.versions.size(), 2u);
  EXPECT_EQ(status.versions[0].state, VersionState::kAvailable);
  EXPECT_EQ(status.versions[0].reason, kFallbackReason);
  EXPECT_EQ(status.versions[1].reason, "bad weights");
}

TEST_F(ModelRegistryTest, NotSelectedMessageQuotesTheNameAndSaysWhy) {
  ModelConfig config;
  config.version_policy.num_versions = 3;  // latest:3
  registry_->SetModelSettings("m\n", config, "");
  registry_->SetAvailable("m\n", 1, MakeModel("v1"));
  registry_->SetFailed("m\n", 2, "tried as a fallback, failed");
  registry_->SetFailed("m\n", 3, "bad");
  registry_->SetFailed("m\n", 4, "bad");
  registry_->SetLoading("m\n", 5);
  registry_->SetSelection("m\n", {5, 3, 4}, 1);  // any order
  EXPECT_EQ(registry_->Get("m\n", 1).status().message(),
            "model 'm\\n' version 1 is not served under its version policy "
            "latest:3 (it only answers requests that name no version while "
            "versions 3, 4 have failed and version 5 is loading)");
  // A version tried as the fallback that failed is not the client's either.
  absl::StatusOr<ServableModel> two = registry_->Get("m\n", 2);
  EXPECT_EQ(two.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(two.status().message(),
            "model 'm\\n' version 2 is not served under its version policy "
            "latest:3 (version 1 answers requests that name no version while "
            "versions 3, 4 have failed and version 5 is loading)");
  // The selected ones keep their own answers.
  EXPECT_EQ(registry_->Get("m\n", 4).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(registry_->Get("m\n", 5).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(ServedVersion("m\n", 0), "1");

  // specific { versions: 9 } with no version 9 on disk: nothing selected.
  config.version_policy.kind = VersionPolicy::Kind::kSpecific;
  config.version_policy.versions = {9};
  registry_->SetModelSettings("m\n", config, "");
  registry_->SetSelection("m\n", {}, 1);
  EXPECT_EQ(registry_->Get("m\n", 1).status().message(),
            "model 'm\\n' version 1 is not served under its version policy "
            "specific:9 (it only answers requests that name no version while "
            "no version it selects is in the repository)");
}

TEST_F(ModelRegistryTest, FallbacksReasonKeepsAFailedReloadsReason) {
  registry_->SetAvailable("m", 1, MakeModel("v1"));
  registry_->SetFailed("m", 2, "bad");
  registry_->SetSelection("m", {2}, 1);
  registry_->SetFailed("m", 1, "truncated");  // its reload failed
  EXPECT_EQ(StatusOf("m").versions.at(0).reason,
            absl::StrCat(kFallbackReason,
                         "; reload failed, still serving the loaded copy: "
                         "truncated"));
  EXPECT_EQ(ServedVersion("m", 0), "1");
}

TEST_F(ModelRegistryTest,
       SelectedVersionThatLoadsServesAndTheFallbackStaysHidden) {
  registry_->SetAvailable("m", 1, MakeModel("v1"));
  registry_->SetFailed("m", 2, "bad");
  registry_->SetSelection("m", {3}, 1);
  registry_->SetAvailable("m", 3, MakeModel("v3"));  // selected: it serves
  EXPECT_EQ(ServedVersion("m", 0), "3");
  EXPECT_EQ(ServedVersion("m", 3), "3");
  EXPECT_EQ(registry_->Get("m", 1).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_THAT(registry_->AvailableVersions("m"), ElementsAre(3));

  // Unloading the fallback clears it: a version 1 loaded again later is an
  // ordinary version.
  registry_->Unload("m", 1);
  registry_->SetAvailable("m", 1, MakeModel("v1 again"));
  EXPECT_EQ(ServedVersion("m", 1), "1");
  EXPECT_THAT(registry_->AvailableVersions("m"), ElementsAre(1, 3));
  EXPECT_EQ(StatusOf("m").versions.at(0).reason, "");
}

TEST_F(ModelRegistryTest,
       VersionZeroGetsTheServingVersionWhileTheFallbackLoads) {
  // The watcher marks a fallback before loading it: meanwhile the version
  // that served keeps the model answering.
  registry_->SetAvailable("m", 1, MakeModel("v1"));
  registry_->SetFailed("m", 3, "bad");
  registry_->SetSelection("m", {3}, 2);
  registry_->SetLoading("m", 2);
  absl::StatusOr<ServableModel> unnamed = registry_->Get("m", 0);
  ASSERT_TRUE(unnamed.ok()) << unnamed.status();
  EXPECT_EQ(unnamed->version, 1);
  EXPECT_EQ(registry_->Get("m", 1).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ModelRegistryTest, WithoutAFallbackEveryAvailableVersionMayBeNamed) {
  // As while a newly selected version loads: the one it replaces answers
  // requests that name it until it unloads.
  registry_->SetAvailable("m", 1, MakeModel("v1"));
  registry_->SetAvailable("m", 2, MakeModel("v2"));
  registry_->SetSelection("m", {2}, 0);
  EXPECT_EQ(ServedVersion("m", 1), "1");
  EXPECT_THAT(registry_->AvailableVersions("m"), ElementsAre(1, 2));
  // A fallback cleared by SetSelection: 1 may be named again.
  registry_->SetSelection("m", {2}, 1);
  registry_->SetSelection("m", {1, 2}, 0);
  EXPECT_EQ(ServedVersion("m", 1), "1");
  EXPECT_EQ(StatusOf("m").versions.at(0).reason, "");
}

TEST_F(ModelRegistryTest, ConcurrentGetsDuringSwapsAlwaysSeeAWholeModel) {
  // One writer swaps versions in and out while readers pin them; every
  // successful Get must return a usable model of the version it names.
  registry_->SetAvailable("m", 1, MakeModel("1"));
  constexpr int kSwaps = 200;
  std::vector<std::thread> readers;
  std::atomic<int> ok_gets{0};
  std::atomic<bool> writer_done{false};
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&] {
      // At least a few hundred reads, and until the writer has finished.
      for (int i = 0; i < 500 || !writer_done.load(); ++i) {
        absl::StatusOr<ServableModel> got = registry_->Get("m", 0);
        // A version is made available before the previous one unloads.
        EXPECT_TRUE(got.ok()) << got.status();
        if (!got.ok()) continue;
        EXPECT_EQ(got->model->name(), std::to_string(got->version));
        ok_gets.fetch_add(1);
      }
    });
  }
  for (int v = 2; v <= kSwaps; ++v) {
    registry_->SetAvailable("m", v, MakeModel(std::to_string(v)));
    registry_->Unload("m", v - 1);
    registry_->CollectUnloaded();
  }
  writer_done.store(true);
  for (std::thread& t : readers) t.join();
  EXPECT_GT(ok_gets.load(), 0);
  registry_->CollectUnloaded();
  EXPECT_THAT(States("m"), ElementsAre(Pair(kSwaps, VersionState::kAvailable)));
}

}  // namespace
}  // namespace biserve
