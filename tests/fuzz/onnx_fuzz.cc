// Fuzz target for the ONNX importer: the bytes are a serialized ONNX
// ModelProto, as a model.onnx in a repository version folder would hold
// (the server reads the file whole and imports it the same way). Every input
// must give a status, never a crash and never memory out of proportion to
// the input: a tensor that declares huge dims (or a raw_data size that does
// not match them) must be refused before anything is allocated for it, and
// libFuzzer's -rss_limit_mb (scripts/fuzz.sh) reports any that is not.
// After the import comes what LoadAnyModelFile does: Model::Create, whose
// refusal is a status like the importer's (non-finite weights, say, are
// refused there, not by the importer: corpus/onnx_import/nan_weights),
// but never INTERNAL; and a model that validates must warm up, as the
// server warms each one before it serves.
#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/eval/evaluator.h"
#include "core/model/model.h"
#include "importers/onnx_importer.h"
#include "proto/model_codec.h"
#include "tests/fuzz/fuzz_support.h"

namespace biserve {

int FuzzOnnxImport(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<v1::Model> imported =
      ImportOnnxBytes(bytes, OnnxImportOptions());
  if (!imported.ok()) return 0;
  absl::StatusOr<std::shared_ptr<const Model>> model =
      Model::Create(ModelSpecFromProto(*imported));
  if (!model.ok()) {
    FuzzCheck(model.status().code() == absl::StatusCode::kInvalidArgument,
              absl::StrCat("an imported ONNX model is refused with an "
                           "unexpected code: ",
                           model.status().ToString()));
    return 0;
  }
  absl::Status warm = WarmUp(**model, FuzzPool());
  FuzzCheck(warm.ok(), absl::StrCat("an imported ONNX model failed its "
                                    "warm-up: ",
                                    warm.ToString()));
  return 0;
}

}  // namespace biserve
