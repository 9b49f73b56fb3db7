// Fuzz target for the Keras file importer: the bytes are a whole .keras zip
// or legacy .h5 file, as a model.keras or model.h5 in a repository version
// folder would hold (the server reads the file whole and imports it the
// same way). Every input must give a status, never a crash and never
// memory out of proportion to the input: zip members and HDF5 datasets
// that declare more than the file can hold are refused before anything is
// allocated for them. A model that imports must validate and evaluate.
//
// libhdf5 itself is not hardened against hostile files; a crash inside it
// is still a finding (the server would crash on that file), to be reported
// upstream or worked around before HDF5 is called.
#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/eval/evaluator.h"
#include "core/model/model.h"
#include "importers/keras_file_importer.h"
#include "proto/model_codec.h"
#include "tests/fuzz/fuzz_support.h"

namespace biserve {

int FuzzKerasImport(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<v1::Model> imported =
      ImportKerasBytes(bytes, KerasImportOptions());
  if (!imported.ok()) return 0;
  absl::StatusOr<std::shared_ptr<const Model>> model =
      Model::Create(ModelSpecFromProto(*imported));
  FuzzCheck(model.ok(), absl::StrCat("an imported Keras model does not "
                                     "validate: ",
                                     model.status().ToString()));
  absl::Status warm = WarmUp(**model, FuzzPool());
  FuzzCheck(warm.ok(), absl::StrCat("an imported Keras model failed its "
                                    "warm-up: ",
                                    warm.ToString()));
  return 0;
}

}  // namespace biserve
