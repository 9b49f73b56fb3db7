// Fuzz target for the TF.js importer. ImportTfjsLayersModel reads files, so
// one input holds a model folder:
//
//   <model.json>
//   \n--- file <name>\n<bytes>      zero or more: the files beside it
//
// <name> is a plain file name ([A-Za-z0-9._-], not starting with '.'); a
// section with another name is skipped. The files are written to a fresh
// temporary folder, model.json is imported from it, and a model that
// imports must then validate and evaluate (the importer promises a model
// Model::Create accepts).
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/eval/evaluator.h"
#include "core/model/model.h"
#include "importers/tfjs_importer.h"
#include "proto/model_codec.h"
#include "tests/fuzz/fuzz_support.h"

namespace biserve {
namespace {

constexpr absl::string_view kFileMarker = "\n--- file ";

bool PlainFileName(absl::string_view name) {
  if (name.empty() || name.size() > 64 || name[0] == '.') return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// A folder of this process's own, emptied before each input.
const std::filesystem::path& ScratchFolder() {
  static const std::filesystem::path* const folder = [] {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "biserve_fuzz_tfjs_XXXXXX")
            .string();
    FuzzCheck(mkdtemp(pattern.data()) != nullptr, "mkdtemp failed");
    return new std::filesystem::path(pattern);
  }();
  return *folder;
}

void WriteFile(const std::filesystem::path& path, absl::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  FuzzCheck(out.good(), absl::StrCat("cannot write ", path.string()));
}

}  // namespace

int FuzzTfjsImport(const uint8_t* data, size_t size) {
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  const std::filesystem::path& folder = ScratchFolder();
  for (const auto& entry : std::filesystem::directory_iterator(folder)) {
    std::filesystem::remove_all(entry.path());
  }
  size_t marker = input.find(kFileMarker);
  WriteFile(folder / "model.json", input.substr(0, marker));
  while (marker != absl::string_view::npos) {
    const size_t name_start = marker + kFileMarker.size();
    const size_t name_end = input.find('\n', name_start);
    if (name_end == absl::string_view::npos) break;
    const size_t next = input.find(kFileMarker, name_end);
    const absl::string_view name =
        input.substr(name_start, name_end - name_start);
    if (PlainFileName(name) && name != "model.json") {
      const size_t body = name_end + 1;
      WriteFile(folder / std::string(name),
                input.substr(body, next == absl::string_view::npos
                                       ? absl::string_view::npos
                                       : next - body));
    }
    marker = next;
  }

  absl::StatusOr<v1::Model> imported = ImportTfjsLayersModel(
      (folder / "model.json").string(), TfjsImportOptions());
  if (!imported.ok()) return 0;
  absl::StatusOr<std::shared_ptr<const Model>> model =
      Model::Create(ModelSpecFromProto(*imported));
  FuzzCheck(model.ok(), absl::StrCat("an imported model does not validate: ",
                                     model.status().ToString()));
  absl::Status warm = WarmUp(**model, FuzzPool());
  FuzzCheck(warm.ok(), absl::StrCat("an imported model failed its warm-up: ",
                                    warm.ToString()));
  return 0;
}

}  // namespace biserve
