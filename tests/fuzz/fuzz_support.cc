#include "tests/fuzz/fuzz_support.h"

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "absl/status/statusor.h"
#include "proto/model_codec.h"

namespace biserve {
namespace {

std::shared_ptr<const Model> LoadBundled(const char* relative_path) {
  const std::string path =
      std::string(BISERVE_SOURCE_DIR) + "/models/" + relative_path;
  absl::StatusOr<std::shared_ptr<const Model>> model = LoadModelFile(path);
  FuzzCheck(model.ok(), model.status().ToString());
  return *std::move(model);
}

}  // namespace

void FuzzCheck(bool ok, absl::string_view what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz invariant broken: %.*s\n",
               static_cast<int>(what.size()), what.data());
  std::abort();
}

ThreadPool& FuzzPool() {
  static ThreadPool* const pool = [] {
    absl::StatusOr<std::unique_ptr<ThreadPool>> created =
        ThreadPool::Create({.num_threads = 1});
    FuzzCheck(created.ok(), created.status().ToString());
    return created->release();
  }();
  return *pool;
}

const Model& BracketsModel() {
  static const std::shared_ptr<const Model> model =
      LoadBundled("brackets/1/model.pb");
  return *model;
}

const Model& ExampleModel() {
  static const std::shared_ptr<const Model> model =
      LoadBundled("example/1/model.pbtxt");
  return *model;
}

const Model& ModelNamed(absl::string_view name) {
  return name == "brackets" ? BracketsModel() : ExampleModel();
}

}  // namespace biserve
