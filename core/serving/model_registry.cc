#include "core/serving/model_registry.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/quoted_input.h"

namespace biserve {
namespace {

// The first `limit` of `items` joined by `separator`, then how many were
// left out: error messages list models, versions and load failures, and a
// large repository must not make one outgrow a client's 8 KB metadata
// limit.
std::string BoundedList(const std::vector<std::string>& items, size_t limit,
                        absl::string_view separator) {
  if (items.empty()) return "none";
  if (items.size() <= limit) return absl::StrJoin(items, separator);
  return absl::StrCat(
      absl::StrJoin(items.begin(), items.begin() + limit, separator), " and ",
      items.size() - limit, " more");
}

// ListModels' reason for the fallback: it is available, but not as a
// version the policy selects.
constexpr absl::string_view kFallbackReason =
    "fallback: serves requests that name no version until a version selected "
    "by the policy loads";

// "version 3" or "versions 2, 3".
std::string Versions(const std::vector<std::string>& versions) {
  return absl::StrCat(versions.size() == 1 ? "version " : "versions ",
                      BoundedList(versions, 20, ", "));
}

}  // namespace

absl::string_view VersionStateName(VersionState state) {
  switch (state) {
    case VersionState::kLoading:
      return "loading";
    case VersionState::kAvailable:
      return "available";
    case VersionState::kFailed:
      return "failed";
    case VersionState::kUnloading:
      return "unloading";
  }
  return "unknown";
}

absl::StatusOr<std::unique_ptr<ModelRegistry>> ModelRegistry::Create(
    Options options) {
  if (absl::Status s = options.default_batching.Validate(); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("default batching: ", s.message()));
  }
  return std::unique_ptr<ModelRegistry>(new ModelRegistry(std::move(options)));
}

bool ModelRegistry::Serving(const ModelEntry& entry) {
  for (const auto& [version, v] : entry.versions) {
    if (v.state == VersionState::kAvailable) return true;
  }
  return false;
}

bool ModelRegistry::Nameable(const ModelEntry& entry, int64_t version,
                             const VersionEntry& v) {
  if (v.state != VersionState::kAvailable) return false;
  if (entry.fallback == 0) return true;
  return version != entry.fallback &&
         std::binary_search(entry.selected.begin(), entry.selected.end(),
                            version);
}

absl::Status ModelRegistry::NotSelectedError(absl::string_view quoted_name,
                                             const ModelEntry& entry,
                                             int64_t version) {
  // Why the fallback serves: what became of the selected versions.
  std::vector<std::string> failed, loading;
  for (int64_t v : entry.selected) {
    auto it = entry.versions.find(v);
    if (it == entry.versions.end()) continue;
    if (it->second.state == VersionState::kFailed) {
      failed.push_back(absl::StrCat(v));
    } else if (it->second.state == VersionState::kLoading) {
      loading.push_back(absl::StrCat(v));
    }
  }
  std::vector<std::string> why;
  if (!failed.empty()) {
    why.push_back(absl::StrCat(
        Versions(failed), failed.size() == 1 ? " has" : " have", " failed"));
  }
  if (!loading.empty()) {
    why.push_back(absl::StrCat(
        Versions(loading), loading.size() == 1 ? " is" : " are", " loading"));
  }
  if (why.empty()) why.push_back("no version it selects is in the repository");
  const std::string answers =
      version == entry.fallback
          ? "it only answers"
          : absl::StrCat("version ", entry.fallback, " answers");
  return absl::NotFoundError(
      absl::StrCat("model ", quoted_name, " version ", version,
                   " is not served under its version policy ",
                   entry.config.version_policy.ToString(), " (", answers,
                   " requests that name no version while ",
                   absl::StrJoin(why, " and "), ")"));
}

absl::Status ModelRegistry::NotInRepositoryError(absl::string_view name) const {
  std::vector<std::string> names;
  for (const auto& [n, entry] : models_) {
    if (!entry.removed) names.push_back(QuotedInput(n));
  }
  return absl::NotFoundError(
      absl::StrCat("model ", QuotedInput(name), " is not in the repository; ",
                   "models served: ", BoundedList(names, 20, ", ")));
}

absl::StatusOr<ServableModel> ModelRegistry::GetNewest(
    absl::string_view name, const ModelEntry& entry) {
  // Newest first: the first a client may name, else the newest serving,
  // which is the fallback (or while a new fallback loads, the one it
  // replaces), so that the model keeps answering.
  for (auto e = entry.versions.rbegin(); e != entry.versions.rend(); ++e) {
    if (Nameable(entry, e->first, e->second)) {
      return ServableModel{std::string(name), e->first, e->second.model,
                           entry.batching, e->second.metrics};
    }
  }
  for (auto e = entry.versions.rbegin(); e != entry.versions.rend(); ++e) {
    if (e->second.state == VersionState::kAvailable) {
      return ServableModel{std::string(name), e->first, e->second.model,
                           entry.batching, e->second.metrics};
    }
  }
  return NoVersionServes(name, entry);
}

absl::Status ModelRegistry::NoVersionServes(absl::string_view name,
                                            const ModelEntry& entry) {
  std::vector<std::string> failures;
  for (const auto& [v, e] : entry.versions) {
    if (e.state == VersionState::kLoading) {
      return absl::UnavailableError(absl::StrCat("model ", QuotedInput(name),
                                                 " is loading (version ", v,
                                                 "); retry shortly"));
    }
    if (e.state == VersionState::kFailed) {
      failures.push_back(absl::StrCat("version ", v, ": ", e.reason));
    }
  }
  if (!failures.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("model ", QuotedInput(name), " has no loadable version; ",
                     BoundedList(failures, 5, "; ")));
  }
  return absl::NotFoundError(
      absl::StrCat("model ", QuotedInput(name), " has no version to serve"));
}

absl::StatusOr<ServableModel> ModelRegistry::GetNamed(absl::string_view name,
                                                      const ModelEntry& entry,
                                                      int64_t version) {
  auto v = entry.versions.find(version);
  if (v != entry.versions.end()) {
    // While a fallback serves, the policy decides which versions a client
    // may name: the fallback answers requests that name no version only
    // (so that a broken version never takes the model offline), and the
    // versions tried as fallbacks that failed are not the client's either.
    if (entry.fallback != 0 && v->second.state != VersionState::kUnloading &&
        !std::binary_search(entry.selected.begin(), entry.selected.end(),
                            version)) {
      return NotSelectedError(QuotedInput(name), entry, version);
    }
    switch (v->second.state) {
      case VersionState::kAvailable:
        return ServableModel{std::string(name), version, v->second.model,
                             entry.batching, v->second.metrics};
      case VersionState::kLoading:
        return absl::UnavailableError(
            absl::StrCat("version ", version, " of model ", QuotedInput(name),
                         " is loading; retry shortly"));
      case VersionState::kFailed:
        return absl::FailedPreconditionError(
            absl::StrCat("version ", version, " of model ", QuotedInput(name),
                         " failed to load: ", v->second.reason));
      case VersionState::kUnloading:
        break;
    }
  }
  std::vector<std::string> listed;
  for (const auto& [n, e] : entry.versions) {
    if (Nameable(entry, n, e)) listed.push_back(absl::StrCat(n));
  }
  return absl::NotFoundError(absl::StrCat(
      "version ", version, " of model ", QuotedInput(name),
      " is not served; available versions: ", BoundedList(listed, 20, ", ")));
}

absl::StatusOr<ServableModel> ModelRegistry::Get(absl::string_view name,
                                                 int64_t version) const {
  // `name` is the client's: every message quotes it, cut (QuotedInput);
  // only errors pay for that.
  MutexLock lock(&mu_);
  auto it = models_.find(name);
  if (it == models_.end() || it->second.removed) {
    return NotInRepositoryError(name);
  }
  if (version == 0) return GetNewest(name, it->second);
  return GetNamed(name, it->second, version);
}

std::vector<ModelStatus> ModelRegistry::List() const {
  MutexLock lock(&mu_);
  std::vector<ModelStatus> list;
  for (const auto& [name, entry] : models_) {
    ModelStatus status{
        name, entry.config.version_policy.ToString(), entry.config_error, {}};
    for (const auto& [v, e] : entry.versions) {
      status.versions.push_back(VersionStatus{v, e.state, e.reason, e.since});
      // Available, but not as a version the policy selects: the operator
      // sees why it serves (and a failed reload's reason after it).
      if (v == entry.fallback && e.state == VersionState::kAvailable) {
        status.versions.back().reason =
            e.reason.empty() ? std::string(kFallbackReason)
                             : absl::StrCat(kFallbackReason, "; ", e.reason);
      }
    }
    list.push_back(std::move(status));
  }
  return list;
}

std::vector<int64_t> ModelRegistry::AvailableVersions(
    absl::string_view name) const {
  MutexLock lock(&mu_);
  std::vector<int64_t> versions;
  auto it = models_.find(name);
  if (it == models_.end()) return versions;
  for (const auto& [v, e] : it->second.versions) {
    if (Nameable(it->second, v, e)) versions.push_back(v);
  }
  return versions;
}

bool ModelRegistry::IsServing(absl::string_view name) const {
  MutexLock lock(&mu_);
  auto it = models_.find(name);
  return it != models_.end() && Serving(it->second);
}

void ModelRegistry::Mutate(const std::string& name,
                           const std::function<void(ModelEntry&)>& change) {
  bool before, after, created;
  {
    MutexLock lock(&mu_);
    auto emplaced = models_.try_emplace(name);
    ModelEntry& entry = emplaced.first->second;
    created = emplaced.second;
    // A model first seen here (no SetModelSettings yet) serves with the
    // server's defaults, not BatchingOptions' own.
    if (created) entry.batching = options_.default_batching;
    before = Serving(entry);
    change(entry);
    after = Serving(entry);
  }
  // A new model is told too when it does not serve: a listener keeping
  // health statuses must know the name (NOT_SERVING), even if no version
  // of it ever loads.
  if ((before != after || created) && options_.on_serving_change) {
    options_.on_serving_change(name, after);
  }
}

void ModelRegistry::TellVersionChange(const std::string& name, int64_t version,
                                      VersionState state) const {
  if (options_.on_version_change) {
    options_.on_version_change(name, version, state);
  }
}

void ModelRegistry::SetModelSettings(const std::string& name,
                                     const ModelConfig& config,
                                     const std::string& config_error) {
  Mutate(name, [&](ModelEntry& entry) {
    entry.config = config;
    entry.config_error = config_error;
    entry.batching = config.batching.ApplyTo(options_.default_batching);
    entry.removed = false;
  });
}

void ModelRegistry::SetLoading(const std::string& name, int64_t version) {
  Mutate(name, [&](ModelEntry& entry) {
    VersionEntry& v = entry.versions[version];
    if (v.state == VersionState::kAvailable) return;  // a reload: keep serving
    v = VersionEntry{VersionState::kLoading, "", clock_->Now(), nullptr, {}};
  });
}

void ModelRegistry::SetAvailable(const std::string& name, int64_t version,
                                 std::shared_ptr<const Model> model) {
  // Made outside the lock: the factory may take its own.
  std::shared_ptr<const VersionMetrics> metrics =
      options_.version_metrics ? options_.version_metrics(name, version)
                               : nullptr;
  Mutate(name, [&](ModelEntry& entry) {
    entry.versions[version] = VersionEntry{.state = VersionState::kAvailable,
                                           .since = clock_->Now(),
                                           .model = std::move(model),
                                           .metrics = std::move(metrics)};
  });
  TellVersionChange(name, version, VersionState::kAvailable);
}

void ModelRegistry::SetFailed(const std::string& name, int64_t version,
                              const std::string& reason) {
  Mutate(name, [&](ModelEntry& entry) {
    VersionEntry& v = entry.versions[version];
    if (v.state == VersionState::kAvailable) {
      v.reason = absl::StrCat("reload failed, still serving the loaded copy: ",
                              reason);
      return;
    }
    v = VersionEntry{VersionState::kFailed, reason, clock_->Now(), nullptr, {}};
  });
  TellVersionChange(name, version, VersionState::kFailed);
}

void ModelRegistry::Unload(const std::string& name, int64_t version) {
  {
    MutexLock lock(&mu_);
    if (models_.find(name) == models_.end()) return;  // nothing to unload
  }
  bool was_serving = false;
  Mutate(name, [&](ModelEntry& entry) {
    auto it = entry.versions.find(version);
    if (it == entry.versions.end()) return;
    if (entry.fallback == version) entry.fallback = 0;
    VersionEntry& v = it->second;
    was_serving = v.state == VersionState::kAvailable;
    if (v.state != VersionState::kAvailable) {
      if (v.state != VersionState::kUnloading) entry.versions.erase(it);
      return;
    }
    v.unloading = v.model;
    v.model.reset();
    v.state = VersionState::kUnloading;
    v.reason.clear();
    v.since = clock_->Now();
    if (v.unloading.expired()) entry.versions.erase(it);
  });
  if (was_serving) TellVersionChange(name, version, VersionState::kUnloading);
}

void ModelRegistry::SetSelection(const std::string& name,
                                 std::vector<int64_t> selected,
                                 int64_t fallback) {
  std::sort(selected.begin(), selected.end());
  Mutate(name, [&](ModelEntry& entry) {
    entry.selected = std::move(selected);
    entry.fallback = fallback;
  });
}

void ModelRegistry::RemoveModel(const std::string& name) {
  std::vector<int64_t> versions;
  {
    MutexLock lock(&mu_);
    auto it = models_.find(name);
    if (it == models_.end()) return;
    for (const auto& [v, e] : it->second.versions) versions.push_back(v);
  }
  for (int64_t v : versions) Unload(name, v);
  Mutate(name, [](ModelEntry& entry) { entry.removed = true; });
  CollectUnloaded();
}

int ModelRegistry::CollectUnloaded() {
  MutexLock lock(&mu_);
  int forgotten = 0;
  for (auto m = models_.begin(); m != models_.end();) {
    auto& versions = m->second.versions;
    for (auto v = versions.begin(); v != versions.end();) {
      if (v->second.state == VersionState::kUnloading &&
          v->second.unloading.expired()) {
        v = versions.erase(v);
        ++forgotten;
      } else {
        ++v;
      }
    }
    if (m->second.removed && versions.empty()) {
      m = models_.erase(m);
    } else {
      ++m;
    }
  }
  return forgotten;
}

}  // namespace biserve
