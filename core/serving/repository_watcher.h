// RepositoryWatcher: keeps a ModelRegistry in step with a model repository
// on disk.
//
//   <repository>/<name>/config.pbtxt          optional ModelConfig
//   <repository>/<name>/<version>/<file>      one of Options::model_file_names
//
// A version folder holding more than one of those files is refused (its
// reason names them): which one was meant is never guessed.
// Each scan loads the versions the model's VersionPolicy selects that are
// new or whose file changed (size or modification time), warms each up,
// and only then lets it serve. A version that fails stays failed (with its
// reason in the registry, files named relative to the repository) until
// its file changes. While no selected version serves, exactly one other
// version keeps the model answering (as TF Serving's availability-
// preserving policy does): the newest one serving, or under the latest
// policy the newest one that loads. It answers only requests that name no
// version (ModelRegistry::SetSelection): the policy decides which versions
// a client may name. Every other version no longer selected unloads once a
// selected version or that fallback serves, or at once when its folder is
// gone. Loading happens on the scanning thread, one version at a time.
//
// Thread-safety: PollOnce may be called from any thread; scans never
// overlap. Start runs scans on an owned thread that the destructor stops.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/common/clock.h"
#include "core/common/mutex.h"
#include "core/model/model.h"
#include "core/model/model_config.h"
#include "core/serving/model_registry.h"

namespace biserve {

// `message` with `repository_path` taken off the paths in it, so that a
// load error a client sees names "brackets/2/model.pb", not where the
// server keeps its files. Only the paths that start with it change
// ("models/" is kept in "othermodels/x").
std::string RepositoryRelative(absl::string_view message,
                               absl::string_view repository_path);

class RepositoryWatcher {
 public:
  struct Options {
    std::string repository_path;
    // Time between scans of the polling thread.
    absl::Duration poll_interval = absl::Seconds(5);
    // The model file names a version folder may hold (e.g. model.pb,
    // model.pbtxt, model.onnx), in the order messages list them. The server
    // gives importers/model_file.h's list, which its load_model reads.
    // Required: not empty.
    std::vector<std::string> model_file_names;
    // Reads and validates one model file (a path ending in one of
    // model_file_names), in the precision asked for. Required.
    std::function<absl::StatusOr<std::shared_ptr<const Model>>(
        const std::string& path, Precision precision)>
        load_model;
    // The precision of a model whose config.pbtxt names none (the server's
    // --precision).
    Precision default_precision = Precision::kFp32;
    // Reads one config.pbtxt. Required.
    std::function<absl::StatusOr<ModelConfig>(const std::string& path)>
        load_config;
    // Evaluates a freshly loaded model once before it serves, so that its
    // first request does not pay for page faults and lazy set-up. Optional.
    std::function<absl::Status(const Model&)> warm_up;
    // Time between scans, and load times in the log. Not owned; must
    // outlive the watcher. Null: the system clock.
    Clock* clock = nullptr;
  };

  // INVALID_ARGUMENT if a required option is missing or poll_interval is not
  // positive. `registry` is not owned and must outlive the watcher.
  static absl::StatusOr<std::unique_ptr<RepositoryWatcher>> Create(
      Options options, ModelRegistry* registry);

  // Stops the polling thread, if started, after its current scan.
  ~RepositoryWatcher();

  // Scans the repository once and returns when every load has finished.
  void PollOnce();

  // Starts scanning every poll_interval on an owned thread, named
  // biserve-watch.
  // REQUIRES: called at most once.
  void Start();

 private:
  struct FileSignature {
    std::string path;  // empty: no model file in the version folder
    int64_t size = 0;
    int64_t mtime_ns = 0;
    // Other model files in the same folder: the version is refused while
    // there are any. Part of the signature, so removing one reloads.
    std::vector<std::string> also;
    bool operator==(const FileSignature&) const = default;
  };
  struct WatchedVersion {
    FileSignature signature;
    // Asked for at its last load: a config.pbtxt that asks for another
    // reloads the version.
    Precision precision = Precision::kFp32;
    bool available = false;  // false: its last load failed
  };
  struct WatchedModel {
    bool settings_applied = false;
    std::optional<FileSignature> config_signature;
    ModelConfig config;
    std::map<int64_t, WatchedVersion> versions;
  };

  // One scan of a model's versions.
  struct VersionScan {
    std::map<int64_t, FileSignature> on_disk;  // and the file each loads
    std::vector<int64_t> selected;             // by the policy, ascending
    std::set<int64_t> keep;    // selected, and the fallback if there is one
    bool any_serving = false;  // a selected version serves
    int64_t fallback = 0;      // 0: none
  };

  RepositoryWatcher(Options options, ModelRegistry* registry)
      : options_(std::move(options)),
        registry_(registry),
        clock_(options_.clock != nullptr ? options_.clock : &SystemClock()) {}

  // Returns whether anything was unloaded or replaced.
  bool ScanModel(const std::string& name, WatchedModel& model)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(scan_mu_);
  // Reads the model's config.pbtxt if it changed and gives the registry
  // its settings.
  void ApplySettings(const std::string& name, const std::string& dir,
                     WatchedModel& model)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(scan_mu_);
  // The version folders in `dir` and the model file each would load from.
  std::map<int64_t, FileSignature> VersionsOnDisk(const std::string& dir) const;
  // Why `signature` cannot load (no model file, or more than one), or ""
  // if it can. `folder` is relative to the repository: clients see it.
  std::string Refusal(const FileSignature& signature,
                      const std::string& folder) const;
  // Loads the selected versions that are new or changed; records in `scan`
  // whether one serves. Returns whether a serving version was replaced.
  bool LoadSelected(const std::string& name, VersionScan& scan,
                    WatchedModel& model)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(scan_mu_);
  // While no selected version serves: finds (or, under the latest policy,
  // loads) the one other version that keeps the model answering.
  void KeepFallback(const std::string& name, VersionScan& scan,
                    WatchedModel& model)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(scan_mu_);
  // Unloads the versions not kept, once that takes nothing offline.
  // Returns whether a serving version was unloaded.
  bool UnloadUnkept(const std::string& name, const VersionScan& scan,
                    WatchedModel& model)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(scan_mu_);
  // Loads (or reloads) one version; returns whether it now serves.
  bool LoadVersion(const std::string& name, int64_t version,
                   const FileSignature& signature, WatchedModel& model)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(scan_mu_);
  void PollLoop();

  // Immutable after construction.
  const Options options_;
  ModelRegistry* const registry_;
  Clock* const clock_;

  // Held for a whole scan.
  Mutex scan_mu_;
  std::map<std::string, WatchedModel> models_ ABSL_GUARDED_BY(scan_mu_);
  bool repository_missing_logged_ ABSL_GUARDED_BY(scan_mu_) = false;

  Mutex stop_mu_;
  CondVar stop_cv_;
  bool stop_ ABSL_GUARDED_BY(stop_mu_) = false;
  std::thread thread_;
};

}  // namespace biserve
