// biserve_convert: brings a model from another format into biserve's.
//
//   biserve_convert --from tfjs path/model.json
//       --out models/<name>/<version>/model.pb [--text] [--name NAME]
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/text_format.h"
#include "importers/tfjs_importer.h"

ABSL_FLAG(std::string, from, "tfjs",
          "Input format: tfjs (the TensorFlow.js Layers format: model.json "
          "with its weight shards, from tensorflowjs_converter or "
          "TensorFlow.js' model.save).");
ABSL_FLAG(std::string, out, "",
          "Output model file, e.g. models/<name>/1/model.pb. Parent folders "
          "are created.");
ABSL_FLAG(bool, text, false,
          "Write protobuf text format (implied by an --out ending in "
          ".pbtxt).");
ABSL_FLAG(std::string, name, "",
          "Model name; default: the folder two levels above --out "
          "(models/<name>/<version>/model.pb), else the Keras model's name.");

namespace biserve {
namespace {

// models/<name>/<version>/model.pb -> <name>, when the path has that shape.
std::string NameFromOutput(const std::filesystem::path& out) {
  const std::filesystem::path version = out.parent_path();
  const std::string v = version.filename().string();
  if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos) {
    return "";
  }
  return version.parent_path().filename().string();
}

absl::Status Run(const std::vector<char*>& args) {
  if (absl::GetFlag(FLAGS_from) != "tfjs") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--from must be tfjs; was '", absl::GetFlag(FLAGS_from), "'"));
  }
  if (args.size() != 2) {
    return absl::InvalidArgumentError(
        "expected one input: the path of model.json");
  }
  const std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) return absl::InvalidArgumentError("--out is required");
  TfjsImportOptions options;
  options.model_name = absl::GetFlag(FLAGS_name);
  if (options.model_name.empty()) options.model_name = NameFromOutput(out);
  absl::StatusOr<v1::Model> model = ImportTfjsLayersModel(args[1], options);
  if (!model.ok()) return model.status();

  std::string bytes;
  if (absl::GetFlag(FLAGS_text) || absl::EndsWith(out, ".pbtxt")) {
    google::protobuf::TextFormat::Printer printer;
    printer.SetUseShortRepeatedPrimitives(true);
    printer.PrintToString(*model, &bytes);
  } else if (!model->SerializeToString(&bytes)) {
    return absl::InternalError("the model does not serialise");
  }
  // Write beside the target and rename, so a server polling the repository
  // never sees half a file.
  const std::filesystem::path path(out);
  std::error_code error;
  if (path.has_parent_path()) {
    std::filesystem::create_directories(path.parent_path(), error);
  }
  const std::string temporary = out + ".tmp";
  {
    std::ofstream file(temporary, std::ios::binary | std::ios::trunc);
    file << bytes;
    if (!file.flush()) {
      return absl::PermissionDeniedError(
          absl::StrCat(temporary, ": cannot write"));
    }
  }
  std::filesystem::rename(temporary, path, error);
  if (error) {
    return absl::PermissionDeniedError(
        absl::StrCat(out, ": cannot write: ", error.message()));
  }
  std::cerr << "biserve_convert: wrote " << out << " (model '" << model->name()
            << "', " << model->layers_size() << " layers, " << bytes.size()
            << " bytes)\n";
  return absl::OkStatus();
}

}  // namespace
}  // namespace biserve

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Converts a model to biserve's format.\n"
      "  biserve_convert --from tfjs path/model.json --out "
      "models/<name>/<version>/model.pb [--text] [--name NAME]");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  absl::Status status = biserve::Run(args);
  if (!status.ok()) {
    std::cerr << "biserve_convert: " << status.message() << "\n";
    return 1;
  }
  return 0;
}
