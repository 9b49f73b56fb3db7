// Hdf5File: the reads a Keras importer makes of an HDF5 file (a legacy .h5
// model, or the model.weights.h5 inside a .keras zip), over Debian's HDF5 C
// library: string attributes in every encoding Keras and h5py have written,
// float datasets as float32, and the children of a group. Every read gives
// a Status, never a crash or an allocation out of proportion to the file:
// the files come from users (see ../shared/real-models/LAYOUTS.md §1.4).
//
// Thread-safety: Debian's libhdf5 is built without its thread-safe option,
// so no two threads may call into it at once. Every function here REQUIRES
// Hdf5Mutex() held, from before a file is opened until every object of it
// is destroyed.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "importers/weight_map.h"

namespace biserve::importers {

// The one lock over all use of libhdf5 in the process.
absl::Mutex& Hdf5Mutex();

// HDF5's first eight bytes, at offset 0 in every file Keras writes.
inline constexpr absl::string_view kHdf5Signature = "\x89HDF\r\n\x1a\n";

// An open HDF5 object (file, group, dataset, attribute, type or dataspace),
// closed when destroyed. Move-only.
class Hdf5Handle {
 public:
  Hdf5Handle() = default;
  explicit Hdf5Handle(int64_t id) : id_(id) {}
  Hdf5Handle(Hdf5Handle&& other) noexcept : id_(other.id_) { other.id_ = -1; }
  Hdf5Handle& operator=(Hdf5Handle&& other) noexcept;
  ~Hdf5Handle();

  int64_t id() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  int64_t id_ = -1;  // an hid_t; negative when none
};

// A group of an open file, with its path for messages. Holds the file
// open (HDF5 keeps a file open while objects of it are).
class Hdf5Group {
 public:
  // The group's path from the file's root, e.g. "/model_weights/dense".
  const std::string& path() const { return path_; }

  bool HasAttribute(absl::string_view name) const;
  // Whether `relative` (a path that may hold '/') names a link here.
  bool HasChild(absl::string_view relative) const;

  // A string attribute: a scalar, or the first element of a
  // one-element array. INVALID_ARGUMENT when absent or not a string.
  absl::StatusOr<std::string> StringAttribute(absl::string_view name) const;

  // A list of strings Keras stores as the attribute `name` (fixed- or
  // variable-length strings; a zero-element attribute of any type is the
  // empty list) or, when too long for one attribute, as `name0`,
  // `name1`, ... INVALID_ARGUMENT when none of them exists.
  absl::StatusOr<std::vector<std::string>> StringList(
      absl::string_view name) const;

  absl::StatusOr<Hdf5Group> Group(absl::string_view relative) const;

  // The dataset at `relative` as float32 (HDF5 converts any float type;
  // Keras' bfloat16, stored as 16-bit integers with attribute
  // dtype="bfloat16", is widened here). INVALID_ARGUMENT for other types
  // and for a dataset larger than the file could hold.
  absl::StatusOr<Weight> FloatDataset(absl::string_view relative) const;

  // The links in this group, sorted by name; `group` tells which are
  // groups (the others are datasets or other objects).
  struct Child {
    std::string name;
    bool group = false;
  };
  absl::StatusOr<std::vector<Child>> Children() const;

 private:
  friend class Hdf5File;
  Hdf5Group(std::shared_ptr<const Hdf5Handle> group, std::string path,
            int64_t file_size_bytes)
      : group_(std::move(group)),
        path_(std::move(path)),
        file_size_bytes_(file_size_bytes) {}

  absl::StatusOr<std::vector<std::string>> ReadStrings(
      const Hdf5Handle& attribute, absl::string_view name) const;

  std::shared_ptr<const Hdf5Handle> group_;
  std::string path_;
  int64_t file_size_bytes_ = 0;  // bounds what a read may allocate
};

class Hdf5File {
 public:
  // Opens a copy of `image`, a whole HDF5 file in memory. INVALID_ARGUMENT,
  // naming `where`, when it is not an HDF5 file HDF5 can open.
  // REQUIRES: Hdf5Mutex() held.
  static absl::StatusOr<Hdf5File> OpenImage(absl::string_view image,
                                            absl::string_view where);

  Hdf5Group Root() const;

 private:
  Hdf5File(std::shared_ptr<const Hdf5Handle> file, int64_t size_bytes)
      : file_(std::move(file)), size_bytes_(size_bytes) {}

  std::shared_ptr<const Hdf5Handle> file_;
  int64_t size_bytes_ = 0;
};

}  // namespace biserve::importers
