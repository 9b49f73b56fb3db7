// ImportKerasFile: a Keras model as Keras itself saves it, read natively:
// a .keras zip (Keras 3.0 to 3.15, tf.keras 2.12 to 2.15; config.json,
// metadata.json, model.weights.h5) or a legacy HDF5 .h5 (Keras 1.x, Keras
// 2.x, tf.keras 2.x, Keras 3's legacy writer; the model_config attribute
// and the model_weights group). The format is told by the file's content
// (the HDF5 or zip signature), never by its name: real projects commit
// HDF5 files named .keras, and Git LFS pointers named .h5.
//
// Weights are assigned by their order in the file (keras_weight_names.h),
// never by the names it stores; the config goes through the same
// conversion as TF.js' (keras_model_converter.h). See
// ../shared/real-models/LAYOUTS.md for the layouts read.
//
// Thread-safe: calls into libhdf5 are serialised (hdf5_file.h).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "biserve/v1/model.pb.h"

namespace biserve {

struct KerasImportOptions {
  // The model's name; empty keeps the Keras model's own name.
  std::string model_name;
};

// Reads the file at `path` (or, when `path` is a folder, the unzipped
// .keras files config.json, metadata.json and model.weights.h5 in it).
// Errors start with the path: NOT_FOUND when it cannot be read,
// INVALID_ARGUMENT when it is not a Keras model file (saying what it is:
// a Git LFS pointer, weights only, ...) or holds what biserve does not
// support (naming the layer and option).
absl::StatusOr<v1::Model> ImportKerasFile(const std::string& path,
                                          const KerasImportOptions& options);

// The same from the file's bytes; errors start with "keras file".
absl::StatusOr<v1::Model> ImportKerasBytes(absl::string_view bytes,
                                           const KerasImportOptions& options);

}  // namespace biserve
