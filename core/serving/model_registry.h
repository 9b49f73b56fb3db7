// ModelRegistry: every model version the server knows, its state, and the
// loaded Models that requests pin.
//
// Requests call Get, which returns the version's shared Model; a reload
// swaps the registry's pointer while requests in flight keep theirs, so a
// request always finishes on the version it started with, and a version's
// memory is freed when its last request ends.
//
// Thread-safety: every method may be called from any thread. The mutators
// are meant for one writer (RepositoryWatcher); Get and List are cheap (one
// brief lock) and run on the request path.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/common/clock.h"
#include "core/common/mutex.h"
#include "core/model/model.h"
#include "core/model/model_config.h"
#include "core/model/servable_model.h"

namespace biserve {

enum class VersionState { kLoading, kAvailable, kFailed, kUnloading };

absl::string_view VersionStateName(VersionState state);

struct VersionStatus {
  int64_t version = 0;
  VersionState state = VersionState::kLoading;
  // Why loading failed (or a reload failed); for the fallback (see
  // SetSelection), that it serves only requests that name no version.
  std::string reason;
  absl::Time since;  // when the version entered `state`
};

struct ModelStatus {
  std::string name;
  std::string version_policy;  // VersionPolicy::ToString()
  std::string config_error;    // why config.pbtxt was rejected, if it was
  std::vector<VersionStatus> versions;  // ascending
};

class ModelRegistry {
 public:
  struct Options {
    // Batching settings of a model whose config.pbtxt does not set them.
    BatchingOptions default_batching;
    // Called when a model first appears (with whether it serves: false
    // unless it appeared through SetAvailable), when it gains its first
    // available version (true) and when it loses its last (false); e.g. to
    // set its health status, which must exist (NOT_SERVING) even for a
    // model none of whose versions ever loads. Runs on the mutating thread,
    // outside the registry's lock.
    std::function<void(const std::string& model, bool serving)>
        on_serving_change;
    // Called when a version starts serving (kAvailable, also after a
    // reload), fails to load (kFailed) or stops serving (kUnloading); e.g.
    // for metrics. Same thread and lock rules as on_serving_change.
    std::function<void(const std::string& model, int64_t version,
                       VersionState state)>
        on_version_change;
    // Makes a version's metric handles when it starts serving (also after
    // a reload); Get hands them to each request for it (ServableModel).
    // Null: requests carry none. Runs on the mutating thread, outside the
    // registry's lock.
    std::function<std::shared_ptr<const VersionMetrics>(
        const std::string& model, int64_t version)>
        version_metrics;
    // Where the versions' `since` times come from. Not owned; must outlive
    // the registry. Null: the system clock.
    Clock* clock = nullptr;
  };

  static absl::StatusOr<std::unique_ptr<ModelRegistry>> Create(Options options);

  // `version` 0 asks for the newest available version (the fallback if no
  // other serves; see SetSelection). Errors, by what the client should do
  // next: NOT_FOUND (no such model or version, or a version its policy does
  // not select), UNAVAILABLE (still loading: retry), FAILED_PRECONDITION (it
  // failed to load; the message has the reason).
  absl::StatusOr<ServableModel> Get(absl::string_view name,
                                    int64_t version) const;

  // Every model, by name, with its versions.
  std::vector<ModelStatus> List() const;
  // The available versions of `name` a client may name, ascending: not the
  // fallback.
  std::vector<int64_t> AvailableVersions(absl::string_view name) const;
  // Whether `name` has an available version.
  bool IsServing(absl::string_view name) const;

  // --- Mutators (RepositoryWatcher) ---

  // Creates the model's entry if needed and records its settings.
  void SetModelSettings(const std::string& name, const ModelConfig& config,
                        const std::string& config_error);
  void SetLoading(const std::string& name, int64_t version);
  // Serves `model` as `version`, replacing what served it before.
  void SetAvailable(const std::string& name, int64_t version,
                    std::shared_ptr<const Model> model);
  // Loading failed. A version that was serving keeps serving (a failed
  // reload of a changed file) and records the reason.
  void SetFailed(const std::string& name, int64_t version,
                 const std::string& reason);
  // Stops serving `version`; it shows as unloading until its last request
  // ends. Forgets failed and loading versions at once.
  void Unload(const std::string& name, int64_t version);
  // Records which versions the model's policy selects (ascending) and its
  // fallback (0: none): the one other version that keeps the model
  // answering while none of the selected ones serves, as TF Serving's
  // availability-preserving policy does. While there is a fallback, the
  // policy decides which versions a client may name: the fallback answers
  // requests that name no version only; naming it, or another version not
  // selected, is NOT_FOUND with the reason. List gives it a reason and
  // AvailableVersions leaves it out. Unloading the fallback clears it.
  void SetSelection(const std::string& name, std::vector<int64_t> selected,
                    int64_t fallback);
  // Unloads every version and forgets the model once they are gone.
  void RemoveModel(const std::string& name);
  // Forgets unloaded versions whose last request has ended, and removed
  // models with nothing left. Returns how many versions were forgotten.
  int CollectUnloaded();

 private:
  struct VersionEntry {
    VersionState state = VersionState::kLoading;
    std::string reason;
    absl::Time since;
    std::shared_ptr<const Model> model;             // kAvailable
    std::weak_ptr<const Model> unloading;           // kUnloading
    std::shared_ptr<const VersionMetrics> metrics;  // kAvailable
  };
  struct ModelEntry {
    ModelConfig config;
    std::string config_error;
    BatchingOptions batching;
    bool removed = false;
    std::map<int64_t, VersionEntry> versions;
    std::vector<int64_t> selected;  // ascending; see SetSelection
    int64_t fallback = 0;           // 0: none
  };

  explicit ModelRegistry(Options options)
      : options_(std::move(options)),
        clock_(options_.clock != nullptr ? options_.clock : &SystemClock()) {}

  static bool Serving(const ModelEntry& entry);
  // Whether a request may name `version` (state `v`): available and, while
  // there is a fallback, selected by the policy.
  static bool Nameable(const ModelEntry& entry, int64_t version,
                       const VersionEntry& v);
  // NOT_FOUND for a request that names `version`, which the policy does not
  // select while `entry` has a fallback: says which answers instead, and why.
  static absl::Status NotSelectedError(absl::string_view quoted_name,
                                       const ModelEntry& entry,
                                       int64_t version);
  // NOT_FOUND for a model the registry does not serve, listing those it
  // does.
  absl::Status NotInRepositoryError(absl::string_view name) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Get for a request that names no version (`name`'s entry is `entry`).
  static absl::StatusOr<ServableModel> GetNewest(absl::string_view name,
                                                 const ModelEntry& entry);
  // Why no version of `entry` serves: loading, failed, or none there.
  static absl::Status NoVersionServes(absl::string_view name,
                                      const ModelEntry& entry);
  // Get for a request that names `version` (>= 1).
  static absl::StatusOr<ServableModel> GetNamed(absl::string_view name,
                                                const ModelEntry& entry,
                                                int64_t version);
  // Runs `change` on the model's entry (created if missing) under the lock,
  // then tells the listener if serving changed.
  void Mutate(const std::string& name,
              const std::function<void(ModelEntry&)>& change);
  void TellVersionChange(const std::string& name, int64_t version,
                         VersionState state) const;

  // Immutable after construction.
  const Options options_;
  Clock* const clock_;

  mutable Mutex mu_;
  std::map<std::string, ModelEntry, std::less<>> models_ ABSL_GUARDED_BY(mu_);
};

}  // namespace biserve
