// What the tests of a ModelRegistry (model_registry_test.cc, and
// repository_watcher_test.cc through the registry it fills) share: a
// recorder of its serving changes and short views of what it lists.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "core/serving/model_registry.h"

namespace biserve::testing {

// Records the registry's serving-change calls (its on_serving_change);
// lets a test wait for one.
class ServingLog {
 public:
  void Record(const std::string& model, bool serving) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      events_.emplace_back(model, serving);
    }
    cv_.notify_all();
  }
  std::vector<std::pair<std::string, bool>> events() const {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }
  // Waits until (model, serving) has been recorded; false after `timeout`.
  bool WaitFor(const std::string& model, bool serving, absl::Duration timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout), [&] {
      return std::find(events_.begin(), events_.end(),
                       std::pair{model, serving}) != events_.end();
    });
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<std::string, bool>> events_;  // guarded by mu_
};

// The status `registry` lists for `name`; nullopt if it does not list it.
inline std::optional<ModelStatus> FindStatus(const ModelRegistry& registry,
                                             const std::string& name) {
  for (ModelStatus& status : registry.List()) {
    if (status.name == name) return std::move(status);
  }
  return std::nullopt;
}

// The (version, state) pairs of `status`, in its order.
inline std::vector<std::pair<int64_t, VersionState>> VersionStates(
    const ModelStatus& status) {
  std::vector<std::pair<int64_t, VersionState>> states;
  for (const VersionStatus& v : status.versions) {
    states.emplace_back(v.version, v.state);
  }
  return states;
}

// The names of the models `registry` lists, in its order.
inline std::vector<std::string> ListedNames(const ModelRegistry& registry) {
  std::vector<std::string> names;
  for (const ModelStatus& status : registry.List()) {
    names.push_back(status.name);
  }
  return names;
}

}  // namespace biserve::testing
