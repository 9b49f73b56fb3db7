#include "core/serving/repository_watcher.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/log.h"
#include "core/common/process_tuning.h"
#include "core/common/thread_name.h"

namespace biserve {
namespace {

namespace fs = std::filesystem;

// How a version's load starts in the log: a first load, or a reload of a
// serving version because its file or its precision changed.
std::string LoadReason(bool reload, bool same_file, Precision precision) {
  if (!reload) return "loading ";
  if (!same_file) return "file changed; reloading ";
  return absl::StrCat("precision changed to ", PrecisionName(precision),
                      "; reloading ");
}

// The size and modification time of `path`, or nullopt if it is not a
// regular file.
std::optional<std::pair<int64_t, int64_t>> Stat(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return std::nullopt;
  }
  return std::make_pair(static_cast<int64_t>(st.st_size),
                        static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 +
                            st.st_mtim.tv_nsec);
}

// Sub-folders of `dir`, sorted; hidden ones skipped.
std::vector<std::string> SubFolders(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::error_code type_ec;
    if (!entry.is_directory(type_ec)) continue;
    std::string name = entry.path().filename().string();
    if (name.empty() || name[0] == '.') continue;
    names.push_back(std::move(name));
  }
  std::sort(names.begin(), names.end());
  return names;
}

// "a, b or c".
std::string OrList(const std::vector<std::string>& names) {
  if (names.size() <= 1) return absl::StrJoin(names, "");
  return absl::StrCat(absl::StrJoin(names.begin(), names.end() - 1, ", "),
                      " or ", names.back());
}

// A version folder's name: digits only, value >= 1.
std::optional<int64_t> ParseVersion(const std::string& name) {
  if (name.empty() || !std::all_of(name.begin(), name.end(), [](char c) {
        return absl::ascii_isdigit(c);
      })) {
    return std::nullopt;
  }
  int64_t version;
  if (!absl::SimpleAtoi(name, &version) || version < 1) return std::nullopt;
  return version;
}

}  // namespace

std::string RepositoryRelative(absl::string_view message,
                               absl::string_view repository_path) {
  if (repository_path.empty()) return std::string(message);
  const std::string prefix = absl::EndsWith(repository_path, "/")
                                 ? std::string(repository_path)
                                 : absl::StrCat(repository_path, "/");
  // A path character before the prefix means it is inside another path
  // ("othermodels/" for "models/"), which stays as it is.
  auto in_path = [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '/' ||
           c == '.' || c == '_' || c == '-';
  };
  std::string relative;
  size_t from = 0;
  for (size_t at = message.find(prefix); at != absl::string_view::npos;) {
    if (at > 0 && in_path(message[at - 1])) {
      at = message.find(prefix, at + 1);
      continue;
    }
    absl::StrAppend(&relative, message.substr(from, at - from));
    from = at + prefix.size();
    at = message.find(prefix, from);
  }
  absl::StrAppend(&relative, message.substr(from));
  return relative;
}

absl::StatusOr<std::unique_ptr<RepositoryWatcher>> RepositoryWatcher::Create(
    Options options, ModelRegistry* registry) {
  if (options.repository_path.empty()) {
    return absl::InvalidArgumentError("repository_path is empty");
  }
  if (options.model_file_names.empty()) {
    return absl::InvalidArgumentError(
        "model_file_names must name at least one file");
  }
  if (!options.load_model || !options.load_config) {
    return absl::InvalidArgumentError(
        "load_model and load_config must be given");
  }
  if (options.poll_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("poll_interval must be positive; was ",
                     absl::FormatDuration(options.poll_interval)));
  }
  if (registry == nullptr) {
    return absl::InvalidArgumentError("registry is null");
  }
  return std::unique_ptr<RepositoryWatcher>(
      new RepositoryWatcher(std::move(options), registry));
}

RepositoryWatcher::~RepositoryWatcher() {
  {
    MutexLock lock(&stop_mu_);
    stop_ = true;
  }
  stop_cv_.SignalAll();
  if (thread_.joinable()) thread_.join();
}

void RepositoryWatcher::Start() {
  thread_ = std::thread([this] {
    SetCurrentThreadName("biserve-watch");
    PollLoop();
  });
}

void RepositoryWatcher::PollLoop() {
  while (true) {
    {
      MutexLock lock(&stop_mu_);
      const absl::Time next = clock_->Now() + options_.poll_interval;
      while (!stop_ && clock_->Now() < next) {
        clock_->WaitUntil(stop_cv_, stop_mu_, next);
      }
      if (stop_) return;
    }
    PollOnce();
  }
}

void RepositoryWatcher::PollOnce() {
  MutexLock lock(&scan_mu_);
  const std::string& root = options_.repository_path;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    // Keep serving what is loaded: a repository that vanished is more often
    // an unmounted volume than a request to unload everything.
    if (!repository_missing_logged_) {
      LogError(absl::StrCat("model repository ", root,
                            " is not a readable folder; keeping the models "
                            "already loaded"));
      repository_missing_logged_ = true;
    }
    return;
  }
  repository_missing_logged_ = false;

  std::vector<std::string> names = SubFolders(root);
  bool released = false;
  for (auto it = models_.begin(); it != models_.end();) {
    if (std::binary_search(names.begin(), names.end(), it->first)) {
      ++it;
      continue;
    }
    LogInfo(absl::StrCat("model ", it->first,
                         ": folder removed; unloading every version"));
    registry_->RemoveModel(it->first);
    it = models_.erase(it);
    released = true;
  }
  for (const std::string& name : names) {
    released |= ScanModel(name, models_[name]);
  }
  if (registry_->CollectUnloaded() > 0) released = true;
  // Freed weights go back to the system, not just to malloc's free lists.
  if (released) ReleaseFreeMemory();
}

bool RepositoryWatcher::ScanModel(const std::string& name,
                                  WatchedModel& model) {
  const std::string dir = absl::StrCat(options_.repository_path, "/", name);
  // Settings first: they decide which versions serve.
  ApplySettings(name, dir, model);
  VersionScan scan;
  scan.on_disk = VersionsOnDisk(dir);
  std::vector<int64_t> versions;
  for (const auto& [v, signature] : scan.on_disk) versions.push_back(v);
  scan.selected = model.config.version_policy.Select(versions);
  scan.keep.insert(scan.selected.begin(), scan.selected.end());
  const bool replaced = LoadSelected(name, scan, model);
  if (!scan.any_serving) KeepFallback(name, scan, model);
  const bool unloaded = UnloadUnkept(name, scan, model);
  // After the unloads: a fallback no longer needed stays marked until it
  // has unloaded (Unload clears the mark), so that it never answers
  // requests that name it meanwhile; one the policy selects again is
  // unmarked here.
  registry_->SetSelection(name, std::move(scan.selected), scan.fallback);
  return unloaded || replaced;
}

void RepositoryWatcher::ApplySettings(const std::string& name,
                                      const std::string& dir,
                                      WatchedModel& model) {
  const std::string config_path = dir + "/config.pbtxt";
  std::optional<FileSignature> config_signature;
  if (auto st = Stat(config_path)) {
    config_signature = FileSignature{config_path, st->first, st->second};
  }
  if (config_signature == model.config_signature && model.settings_applied) {
    return;
  }
  std::string config_error;
  if (!config_signature) {
    model.config = ModelConfig();
  } else if (absl::StatusOr<ModelConfig> config =
                 options_.load_config(config_path);
             config.ok()) {
    model.config = *std::move(config);
    LogInfo(absl::StrCat("model ", name, ": read ", config_path,
                         " (version policy ",
                         model.config.version_policy.ToString(), ")"));
  } else {
    LogError(absl::StrCat("model ", name, ": ", config.status().message(),
                          "; keeping the previous settings"));
    // Clients see it (ListModels): no server paths.
    config_error =
        RepositoryRelative(config.status().message(), options_.repository_path);
  }
  model.config_signature = config_signature;
  model.settings_applied = true;
  registry_->SetModelSettings(name, model.config, config_error);
}

std::map<int64_t, RepositoryWatcher::FileSignature>
RepositoryWatcher::VersionsOnDisk(const std::string& dir) const {
  std::map<int64_t, FileSignature> on_disk;
  for (const std::string& folder : SubFolders(dir)) {
    std::optional<int64_t> version = ParseVersion(folder);
    if (!version) continue;
    FileSignature signature;
    for (const std::string& file : options_.model_file_names) {
      std::string path = absl::StrCat(dir, "/", folder, "/", file);
      auto st = Stat(path);
      if (!st) continue;
      if (signature.path.empty()) {
        signature = FileSignature{path, st->first, st->second, {}};
      } else {
        signature.also.push_back(file);
      }
    }
    on_disk[*version] = std::move(signature);
  }
  return on_disk;
}

std::string RepositoryWatcher::Refusal(const FileSignature& signature,
                                       const std::string& folder) const {
  if (signature.path.empty()) {
    return absl::StrCat("no ", OrList(options_.model_file_names), " in ",
                        folder);
  }
  if (signature.also.empty()) return "";
  std::vector<std::string> files = {
      std::filesystem::path(signature.path).filename().string()};
  files.insert(files.end(), signature.also.begin(), signature.also.end());
  return absl::StrCat(folder, " holds more than one model file (",
                      absl::StrJoin(files, ", "),
                      "); keep one: which was meant is not guessed");
}

bool RepositoryWatcher::LoadSelected(const std::string& name, VersionScan& scan,
                                     WatchedModel& model) {
  bool replaced = false;
  for (int64_t v : scan.selected) {
    auto watched = model.versions.find(v);
    const bool reload = watched != model.versions.end() &&
                        watched->second.available &&
                        !(watched->second.signature == scan.on_disk[v]);
    scan.any_serving |= LoadVersion(name, v, scan.on_disk[v], model);
    replaced |= reload;
  }
  return replaced;
}

void RepositoryWatcher::KeepFallback(const std::string& name, VersionScan& scan,
                                     WatchedModel& model) {
  // The newest version that serves, as TF Serving's availability-
  // preserving policy keeps one. Under the latest policy it may be loaded
  // for that (a fresh start whose newest version is broken); the others
  // never load a version they do not select. The registry serves it only
  // to requests that name no version: the policy decides which versions a
  // client may name.
  const bool may_load =
      model.config.version_policy.kind == VersionPolicy::Kind::kLatest;
  for (auto it = scan.on_disk.rbegin();
       it != scan.on_disk.rend() && scan.fallback == 0; ++it) {
    const int64_t v = it->first;
    if (scan.keep.count(v)) continue;
    if (may_load) {
      scan.keep.insert(v);  // a failure stays recorded, not retried
      // Marked before it loads, so that no request naming it is served
      // between its load and the marking.
      registry_->SetSelection(name, scan.selected, v);
      if (LoadVersion(name, v, it->second, model)) scan.fallback = v;
    } else if (auto w = model.versions.find(v);
               w != model.versions.end() && w->second.available) {
      scan.keep.insert(v);
      scan.fallback = v;
    }
  }
}

bool RepositoryWatcher::UnloadUnkept(const std::string& name,
                                     const VersionScan& scan,
                                     WatchedModel& model) {
  bool unloaded = false;
  for (auto it = model.versions.begin(); it != model.versions.end();) {
    const int64_t v = it->first;
    const bool gone = scan.on_disk.count(v) == 0;
    // Not selected (nor the fallback): unload once a selected version or
    // the fallback serves, or at once if its folder is gone; failed entries
    // are simply forgotten.
    const bool kept = scan.keep.count(v) > 0 && !gone;
    const bool may_unload =
        gone || scan.any_serving || scan.fallback != 0 || !it->second.available;
    if (kept || !may_unload) {
      ++it;
      continue;
    }
    if (it->second.available) {
      LogInfo(absl::StrCat("model ", name, " version ", v, ": unloading (",
                           gone ? "folder removed" : "not selected by policy ",
                           gone ? "" : model.config.version_policy.ToString(),
                           ")"));
      unloaded = true;
    }
    registry_->Unload(name, v);
    it = model.versions.erase(it);
  }
  return unloaded;
}

bool RepositoryWatcher::LoadVersion(const std::string& name, int64_t version,
                                    const FileSignature& signature,
                                    WatchedModel& model) {
  const Precision precision =
      model.config.precision.value_or(options_.default_precision);
  auto watched = model.versions.find(version);
  if (watched != model.versions.end() &&
      watched->second.signature == signature &&
      watched->second.precision == precision) {
    return watched->second.available;  // unchanged since its last load
  }
  bool reload = watched != model.versions.end() && watched->second.available;
  const bool same_file = reload && watched->second.signature == signature;
  const std::string what =
      absl::StrCat("model ", name, " version ", version, ": ");
  WatchedVersion& entry = model.versions[version];
  entry.signature = signature;
  entry.precision = precision;
  // Reasons reach clients (ListModels, FAILED_PRECONDITION): paths in them
  // are relative to the repository.
  if (const std::string refusal =
          Refusal(signature, absl::StrCat(name, "/", version));
      !refusal.empty()) {
    LogError(
        absl::StrCat(what, refusal, " (in ", options_.repository_path, ")",
                     entry.available ? "; the loaded copy keeps serving" : ""));
    registry_->SetFailed(name, version, refusal);
    return entry.available;  // a serving copy keeps serving
  }
  LogInfo(absl::StrCat(what, LoadReason(reload, same_file, precision),
                       signature.path, " in ", PrecisionName(precision)));
  registry_->SetLoading(name, version);
  const absl::Time start = clock_->Now();
  absl::StatusOr<std::shared_ptr<const Model>> loaded =
      options_.load_model(signature.path, precision);
  absl::Status status = loaded.status();
  if (status.ok() && options_.warm_up) {
    status = options_.warm_up(**loaded);
    if (!status.ok()) {
      status = absl::Status(status.code(),
                            absl::StrCat("warm-up failed: ", status.message()));
    }
  }
  if (!status.ok()) {
    LogError(
        absl::StrCat(what, "failed to load: ", status.message(),
                     entry.available ? "; the loaded copy keeps serving" : ""));
    registry_->SetFailed(
        name, version,
        RepositoryRelative(status.message(), options_.repository_path));
    return entry.available;
  }
  if (const std::string fallback =
          PrecisionFallbackReason(precision, (*loaded)->precision());
      !fallback.empty()) {
    LogWarning(absl::StrCat(what, fallback));
  }
  registry_->SetAvailable(name, version, *std::move(loaded));
  entry.available = true;
  LogInfo(absl::StrCat(what, "serving (loaded and warmed up in ",
                       absl::ToInt64Milliseconds(clock_->Now() - start),
                       " ms)"));
  return true;
}

}  // namespace biserve
