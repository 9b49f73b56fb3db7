#include "importers/hdf5_file.h"

#include <hdf5.h>
#include <hdf5_hl.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "importers/import_error.h"

namespace biserve::importers {
namespace {

// HDF5 prints its error stack to stderr by default: a hostile file would
// flood the server's log. Errors come back as Statuses instead.
void SilenceHdf5() {
  static const bool silenced = [] {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)silenced;
}

std::string Join(absl::string_view path, absl::string_view relative) {
  if (path == "/") return absl::StrCat("/", relative);
  return absl::StrCat(path, "/", relative);
}

// The number of elements of `space`; nullopt when HDF5 cannot tell or it
// does not fit in int64.
std::optional<int64_t> ElementCount(hid_t space,
                                    std::vector<int64_t>* shape = nullptr) {
  const int rank = H5Sget_simple_extent_ndims(space);
  if (rank < 0 || rank > H5S_MAX_RANK) return std::nullopt;
  hsize_t dims[H5S_MAX_RANK];
  if (H5Sget_simple_extent_dims(space, dims, nullptr) < 0) return std::nullopt;
  int64_t count = 1;
  for (int i = 0; i < rank; ++i) {
    if (dims[i] > static_cast<hsize_t>(std::numeric_limits<int32_t>::max())) {
      return std::nullopt;
    }
    if (shape != nullptr) shape->push_back(static_cast<int64_t>(dims[i]));
    count *= static_cast<int64_t>(dims[i]);
    if (count > (int64_t{1} << 40)) return std::nullopt;
  }
  return count;
}

// Splits fixed-length strings of `size` bytes each, dropping the NUL or
// space padding.
std::vector<std::string> SplitFixed(const std::vector<char>& buffer,
                                    size_t size, int64_t count) {
  std::vector<std::string> out;
  for (int64_t i = 0; i < count; ++i) {
    absl::string_view s(buffer.data() + i * size, size);
    s = s.substr(0, std::min(s.size(), s.find('\0')));
    while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
    out.emplace_back(s);
  }
  return out;
}

// Keras' bfloat16: the top half of a float32's bits.
float FromBfloat16(uint16_t bits) {
  const uint32_t wide = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &wide, sizeof(f));
  return f;
}

}  // namespace

absl::Mutex& Hdf5Mutex() {
  static absl::Mutex* const mutex = new absl::Mutex;
  return *mutex;
}

Hdf5Handle& Hdf5Handle::operator=(Hdf5Handle&& other) noexcept {
  if (this != &other) {
    Hdf5Handle old(id_);
    id_ = other.id_;
    other.id_ = -1;
  }
  return *this;
}

Hdf5Handle::~Hdf5Handle() {
  if (id_ < 0) return;
  switch (H5Iget_type(id_)) {
    case H5I_FILE:
      H5Fclose(id_);
      break;
    case H5I_GROUP:
    case H5I_DATASET:
      H5Oclose(id_);
      break;
    case H5I_ATTR:
      H5Aclose(id_);
      break;
    case H5I_DATATYPE:
      H5Tclose(id_);
      break;
    case H5I_DATASPACE:
      H5Sclose(id_);
      break;
    default:
      break;
  }
}

absl::StatusOr<Hdf5File> Hdf5File::OpenImage(absl::string_view image,
                                             absl::string_view where) {
  SilenceHdf5();
  if (image.size() < kHdf5Signature.size() ||
      image.substr(0, kHdf5Signature.size()) != kHdf5Signature) {
    return Invalid(where, "not an HDF5 file (no HDF5 signature)");
  }
  // HDF5 copies the image (flags 0), so `image` need not outlive the file.
  Hdf5Handle file(
      H5LTopen_file_image(const_cast<char*>(image.data()), image.size(), 0));
  if (!file.valid()) {
    return Invalid(where,
                   "HDF5 cannot open it (truncated or damaged HDF5 file)");
  }
  return Hdf5File(std::make_shared<const Hdf5Handle>(std::move(file)),
                  static_cast<int64_t>(image.size()));
}

Hdf5Group Hdf5File::Root() const {
  return Hdf5Group(std::make_shared<const Hdf5Handle>(
                       Hdf5Handle(H5Gopen2(file_->id(), "/", H5P_DEFAULT))),
                   "/", size_bytes_);
}

bool Hdf5Group::HasAttribute(absl::string_view name) const {
  const std::string n(name);
  return group_->valid() && H5Aexists(group_->id(), n.c_str()) > 0;
}

bool Hdf5Group::HasChild(absl::string_view relative) const {
  if (!group_->valid() || relative.empty()) return false;
  // H5Lexists checks one link: every intermediate group in turn.
  std::string prefix;
  for (absl::string_view part : absl::StrSplit(relative, '/')) {
    if (part.empty()) return false;
    prefix =
        prefix.empty() ? std::string(part) : absl::StrCat(prefix, "/", part);
    if (H5Lexists(group_->id(), prefix.c_str(), H5P_DEFAULT) <= 0) return false;
  }
  return true;
}

absl::StatusOr<std::string> Hdf5Group::StringAttribute(
    absl::string_view name) const {
  if (!HasAttribute(name)) {
    return Invalid(path_, absl::StrCat("no attribute '", name, "'"));
  }
  const std::string n(name);
  Hdf5Handle attribute(H5Aopen(group_->id(), n.c_str(), H5P_DEFAULT));
  absl::StatusOr<std::vector<std::string>> strings =
      ReadStrings(attribute, name);
  if (!strings.ok()) return strings.status();
  if (strings->size() != 1) {
    return Invalid(
        path_, absl::StrCat("attribute '", name,
                            "': expected one string, found ", strings->size()));
  }
  return std::move(strings->front());
}

absl::StatusOr<std::vector<std::string>> Hdf5Group::StringList(
    absl::string_view name) const {
  if (HasAttribute(name)) {
    const std::string n(name);
    Hdf5Handle attribute(H5Aopen(group_->id(), n.c_str(), H5P_DEFAULT));
    return ReadStrings(attribute, name);
  }
  // Keras splits a list longer than an object header holds (64 KiB).
  std::vector<std::string> all;
  for (int chunk = 0; HasAttribute(absl::StrCat(name, chunk)); ++chunk) {
    const std::string n = absl::StrCat(name, chunk);
    Hdf5Handle attribute(H5Aopen(group_->id(), n.c_str(), H5P_DEFAULT));
    absl::StatusOr<std::vector<std::string>> part = ReadStrings(attribute, n);
    if (!part.ok()) return part.status();
    for (std::string& s : *part) all.push_back(std::move(s));
  }
  if (all.empty() && !HasAttribute(absl::StrCat(name, 0))) {
    return Invalid(path_, absl::StrCat("no attribute '", name, "'"));
  }
  return all;
}

absl::StatusOr<std::vector<std::string>> Hdf5Group::ReadStrings(
    const Hdf5Handle& attribute, absl::string_view name) const {
  const std::string where = absl::StrCat(path_, " attribute '", name, "'");
  if (!attribute.valid()) return Invalid(where, "cannot be opened");
  Hdf5Handle type(H5Aget_type(attribute.id()));
  Hdf5Handle space(H5Aget_space(attribute.id()));
  if (!type.valid() || !space.valid()) return Invalid(where, "unreadable");
  std::optional<int64_t> count = ElementCount(space.id());
  if (!count.has_value()) return Invalid(where, "unreadable shape");
  // h5py writes an empty list as a zero-element float64 array.
  if (*count == 0) return std::vector<std::string>{};
  if (H5Tget_class(type.id()) != H5T_STRING) {
    return Invalid(where, "expected strings");
  }
  const htri_t variable = H5Tis_variable_str(type.id());
  if (variable < 0) return Invalid(where, "unreadable string type");
  Hdf5Handle memory(H5Tcopy(H5T_C_S1));
  H5Tset_cset(memory.id(), H5Tget_cset(type.id()));
  if (variable > 0) {
    if (*count > file_size_bytes_) return Invalid(where, "too many strings");
    H5Tset_size(memory.id(), H5T_VARIABLE);
    std::vector<char*> pointers(*count, nullptr);
    if (H5Aread(attribute.id(), memory.id(), pointers.data()) < 0) {
      return Invalid(where, "cannot be read");
    }
    std::vector<std::string> out;
    for (char* p : pointers) out.emplace_back(p == nullptr ? "" : p);
    H5Dvlen_reclaim(memory.id(), space.id(), H5P_DEFAULT, pointers.data());
    return out;
  }
  const size_t size = H5Tget_size(type.id());
  if (size == 0 || static_cast<int64_t>(size) > file_size_bytes_ ||
      *count > file_size_bytes_ / static_cast<int64_t>(size)) {
    return Invalid(where, "larger than the file");
  }
  H5Tset_size(memory.id(), size);
  H5Tset_strpad(memory.id(), H5T_STR_NULLPAD);
  std::vector<char> buffer(size * *count, '\0');
  if (H5Aread(attribute.id(), memory.id(), buffer.data()) < 0) {
    return Invalid(where, "cannot be read");
  }
  return SplitFixed(buffer, size, *count);
}

absl::StatusOr<Hdf5Group> Hdf5Group::Group(absl::string_view relative) const {
  const std::string where = Join(path_, relative);
  if (!HasChild(relative)) return Invalid(where, "no such group");
  const std::string r(relative);
  Hdf5Handle group(H5Gopen2(group_->id(), r.c_str(), H5P_DEFAULT));
  if (!group.valid()) return Invalid(where, "not a group");
  return Hdf5Group(std::make_shared<const Hdf5Handle>(std::move(group)), where,
                   file_size_bytes_);
}

absl::StatusOr<Weight> Hdf5Group::FloatDataset(
    absl::string_view relative) const {
  const std::string where = Join(path_, relative);
  if (!HasChild(relative)) return Invalid(where, "no such dataset");
  const std::string r(relative);
  Hdf5Handle dataset(H5Dopen2(group_->id(), r.c_str(), H5P_DEFAULT));
  if (!dataset.valid()) return Invalid(where, "not a dataset");
  Hdf5Handle type(H5Dget_type(dataset.id()));
  Hdf5Handle space(H5Dget_space(dataset.id()));
  if (!type.valid() || !space.valid()) return Invalid(where, "unreadable");
  Weight weight;
  std::optional<int64_t> count = ElementCount(space.id(), &weight.shape);
  if (!count.has_value()) return Invalid(where, "unreadable shape");
  const H5T_class_t type_class = H5Tget_class(type.id());
  const size_t type_size = H5Tget_size(type.id());
  // Keras does not compress: each element is stored in the file.
  if (type_size == 0 || *count > file_size_bytes_ / type_size) {
    return Invalid(
        where, absl::StrCat("holds ", *count, " values, more than the file's ",
                            file_size_bytes_, " bytes can"));
  }
  const Hdf5Group dataset_view(
      std::make_shared<const Hdf5Handle>(std::move(dataset)), where,
      file_size_bytes_);
  const bool bfloat16 =
      dataset_view.HasAttribute("dtype") &&
      dataset_view.StringAttribute("dtype").value_or("") == "bfloat16";
  const hid_t id = dataset_view.group_->id();
  if (bfloat16 && type_class == H5T_INTEGER && type_size == 2) {
    std::vector<uint16_t> bits(*count);
    if (*count > 0 && H5Dread(id, H5T_NATIVE_UINT16, H5S_ALL, H5S_ALL,
                              H5P_DEFAULT, bits.data()) < 0) {
      return Invalid(where, "cannot be read");
    }
    weight.values.reserve(*count);
    for (uint16_t b : bits) weight.values.push_back(FromBfloat16(b));
    return weight;
  }
  if (type_class != H5T_FLOAT) {
    return Invalid(where, "expected floating-point weights");
  }
  weight.values.resize(*count);
  if (*count > 0 && H5Dread(id, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                            weight.values.data()) < 0) {
    return Invalid(where, "cannot be read");
  }
  return weight;
}

absl::StatusOr<std::vector<Hdf5Group::Child>> Hdf5Group::Children() const {
  H5G_info_t info;
  if (!group_->valid() || H5Gget_info(group_->id(), &info) < 0) {
    return Invalid(path_, "unreadable group");
  }
  if (static_cast<int64_t>(info.nlinks) > file_size_bytes_) {
    return Invalid(path_, "more links than the file could hold");
  }
  std::vector<Child> children;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t length =
        H5Lget_name_by_idx(group_->id(), ".", H5_INDEX_NAME, H5_ITER_INC, i,
                           nullptr, 0, H5P_DEFAULT);
    if (length < 0 || length > file_size_bytes_) {
      return Invalid(path_, "unreadable link name");
    }
    std::string name(static_cast<size_t>(length) + 1, '\0');
    H5Lget_name_by_idx(group_->id(), ".", H5_INDEX_NAME, H5_ITER_INC, i,
                       name.data(), name.size(), H5P_DEFAULT);
    name.resize(static_cast<size_t>(length));
    Hdf5Handle object(H5Oopen(group_->id(), name.c_str(), H5P_DEFAULT));
    children.push_back(
        {name, object.valid() && H5Iget_type(object.id()) == H5I_GROUP});
  }
  std::sort(children.begin(), children.end(),
            [](const Child& a, const Child& b) { return a.name < b.name; });
  return children;
}

}  // namespace biserve::importers
