// KerasArchive: the three files of a Keras v3 model (`model.save("m.keras")`
// in Keras 3 and tf.keras 2.12 to 2.15): config.json, metadata.json and
// model.weights.h5, read from the .keras zip (with libzip) or from the
// unzipped folder Keras >= 3.4 can also write (zipped=False).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace biserve::importers {

// The zip's first four bytes ("PK\3\4"; an empty zip starts "PK\5\6").
inline constexpr absl::string_view kZipSignature = "PK\x03\x04";
inline constexpr absl::string_view kEmptyZipSignature = "PK\x05\x06";

struct KerasArchive {
  std::string config_json;    // the model: {"class_name", "config", ...}
  std::string metadata_json;  // {"keras_version", ...}; may be empty
  std::string weights_h5;     // model.weights.h5, a whole HDF5 file
};

// Reads the archive from `zip`, a whole .keras file in memory.
// INVALID_ARGUMENT, naming `where`, for a zip libzip cannot read, a member
// missing, a member larger than its compressed size allows, or weights
// saved as model.weights.npz (not supported).
absl::StatusOr<KerasArchive> ReadKerasZip(absl::string_view zip,
                                          absl::string_view where);

// The same three files from the folder `dir`.
absl::StatusOr<KerasArchive> ReadKerasFolder(const std::string& dir);

}  // namespace biserve::importers
