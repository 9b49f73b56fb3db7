#include "importers/keras_archive.h"

#include <zip.h>

#include <filesystem>
#include <memory>
#include <optional>

#include "absl/strings/str_cat.h"
#include "importers/import_error.h"
#include "proto/read_file.h"

namespace biserve::importers {
namespace {

struct ZipCloser {
  void operator()(zip_t* zip) const { zip_discard(zip); }
};
struct ZipFileCloser {
  void operator()(zip_file_t* file) const { zip_fclose(file); }
};
using ZipPtr = std::unique_ptr<zip_t, ZipCloser>;

// Deflate expands at most 1032 to 1: a member claiming more than that is
// refused before anything is allocated for it (a zip bomb, or a lie).
constexpr uint64_t kMaxDeflateRatio = 1032;

// The member `name` of `zip`, whole; nullopt when absent.
absl::StatusOr<std::optional<std::string>> ReadMember(zip_t* zip,
                                                      const char* name,
                                                      absl::string_view where) {
  const zip_int64_t index = zip_name_locate(zip, name, 0);
  if (index < 0) return std::optional<std::string>();
  zip_stat_t stat;
  zip_stat_init(&stat);
  if (zip_stat_index(zip, index, 0, &stat) != 0 ||
      (stat.valid & ZIP_STAT_SIZE) == 0 ||
      (stat.valid & ZIP_STAT_COMP_SIZE) == 0) {
    return Invalid(where, absl::StrCat(name, ": unreadable zip entry"));
  }
  if (stat.size > stat.comp_size * kMaxDeflateRatio + 1024 ||
      stat.size > (uint64_t{1} << 34)) {
    return Invalid(where, absl::StrCat(name, ": declares ", stat.size,
                                       " bytes, more than its ", stat.comp_size,
                                       " compressed bytes can hold"));
  }
  std::unique_ptr<zip_file_t, ZipFileCloser> file(
      zip_fopen_index(zip, index, 0));
  if (file == nullptr) {
    return Invalid(where, absl::StrCat(name, ": cannot be read (",
                                       zip_strerror(zip), ")"));
  }
  std::string bytes(stat.size, '\0');
  const zip_int64_t read = zip_fread(file.get(), bytes.data(), bytes.size());
  char extra;
  if (read < 0 || static_cast<uint64_t>(read) != stat.size ||
      zip_fread(file.get(), &extra, 1) != 0) {
    return Invalid(where, absl::StrCat(name, ": truncated or damaged (read ",
                                       read, " of ", stat.size, " bytes)"));
  }
  return std::optional<std::string>(std::move(bytes));
}

// The three members, checked as the folder's files are.
absl::StatusOr<KerasArchive> Assemble(std::optional<std::string> config,
                                      std::optional<std::string> metadata,
                                      std::optional<std::string> weights,
                                      bool npz, absl::string_view where) {
  if (!config.has_value()) {
    return Invalid(where,
                   "no config.json: not a Keras model archive (a .keras "
                   "file from model.save holds config.json, metadata.json "
                   "and model.weights.h5)");
  }
  if (!weights.has_value()) {
    if (npz) {
      return Invalid(where,
                     "the weights are in model.weights.npz, which biserve "
                     "does not read; save with the default weights format "
                     "(model.weights.h5)");
    }
    return Invalid(where, "no model.weights.h5: the archive holds no weights");
  }
  KerasArchive archive;
  archive.config_json = *std::move(config);
  archive.metadata_json = std::move(metadata).value_or("");
  archive.weights_h5 = *std::move(weights);
  return archive;
}

}  // namespace

absl::StatusOr<KerasArchive> ReadKerasZip(absl::string_view zip,
                                          absl::string_view where) {
  zip_error_t error;
  zip_error_init(&error);
  zip_source_t* source =
      zip_source_buffer_create(zip.data(), zip.size(), 0, &error);
  if (source == nullptr) {
    zip_error_fini(&error);
    return Invalid(where, "cannot read the zip");
  }
  ZipPtr archive(
      zip_open_from_source(source, ZIP_RDONLY | ZIP_CHECKCONS, &error));
  if (archive == nullptr) {
    const std::string message = zip_error_strerror(&error);
    zip_source_free(source);
    zip_error_fini(&error);
    return Invalid(where, absl::StrCat("not a readable zip (", message,
                                       "): a .keras file is a zip archive"));
  }
  zip_error_fini(&error);
  absl::StatusOr<std::optional<std::string>> config =
      ReadMember(archive.get(), "config.json", where);
  if (!config.ok()) return config.status();
  absl::StatusOr<std::optional<std::string>> metadata =
      ReadMember(archive.get(), "metadata.json", where);
  if (!metadata.ok()) return metadata.status();
  absl::StatusOr<std::optional<std::string>> weights =
      ReadMember(archive.get(), "model.weights.h5", where);
  if (!weights.ok()) return weights.status();
  const bool npz = zip_name_locate(archive.get(), "model.weights.npz", 0) >= 0;
  return Assemble(*std::move(config), *std::move(metadata), *std::move(weights),
                  npz, where);
}

absl::StatusOr<KerasArchive> ReadKerasFolder(const std::string& dir) {
  auto read = [&](const char* name) -> std::optional<std::string> {
    const std::filesystem::path path = std::filesystem::path(dir) / name;
    if (!std::filesystem::is_regular_file(path)) return std::nullopt;
    absl::StatusOr<std::string> bytes = ReadFile(path.string(), name);
    if (!bytes.ok()) return std::nullopt;
    return *std::move(bytes);
  };
  return Assemble(
      read("config.json"), read("metadata.json"), read("model.weights.h5"),
      std::filesystem::exists(std::filesystem::path(dir) / "model.weights.npz"),
      dir);
}

}  // namespace biserve::importers
