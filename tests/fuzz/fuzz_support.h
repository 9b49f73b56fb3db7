// What the fuzz targets share: the invariant check, one evaluation pool and
// the bundled models that the request targets serve.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "core/common/thread_pool.h"
#include "core/model/model.h"

namespace biserve {

// Prints `what` and aborts unless `ok`: a broken invariant is a finding, and
// aborting makes libFuzzer save the input and the replay test fail.
void FuzzCheck(bool ok, absl::string_view what);

// One evaluation thread (the caller's): inputs replay the same way each time.
ThreadPool& FuzzPool();

// The bundled models, loaded once from the source tree: models/brackets
// (token ids, an Embedding model) and models/example (8 features per step).
// The request targets serve the one the request names, brackets for
// "brackets" and example for any other name.
const Model& BracketsModel();
const Model& ExampleModel();
const Model& ModelNamed(absl::string_view name);

inline std::string AsString(const uint8_t* data, size_t size) {
  return std::string(reinterpret_cast<const char*>(data), size);
}

}  // namespace biserve
