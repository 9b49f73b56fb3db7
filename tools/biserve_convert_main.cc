// biserve_convert: brings a model from another format into biserve's.
//
//   biserve_convert --from tfjs path/model.json
//       --out models/<name>/<version>/model.pb [--text] [--name NAME]
//   biserve_convert --from onnx path/model.onnx
//       --out models/<name>/<version>/model.pb [--text] [--name NAME]
//   biserve_convert --from keras path/model.keras|model.h5
//       --out models/<name>/<version>/model.pb [--text] [--name NAME]
//
// (A model.onnx, model.keras or model.h5 also serves as it is from a repository
// version folder; converting it once spares the server the import at every load
// and shows the result.)
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/text_format.h"
#include "importers/keras_file_importer.h"
#include "importers/model_file.h"
#include "importers/onnx_importer.h"
#include "importers/tfjs_importer.h"
#include "proto/model_codec.h"

ABSL_FLAG(std::string, from, "tfjs",
          "Input format: tfjs (the TensorFlow.js Layers format: model.json "
          "with its weight shards, from tensorflowjs_converter or "
          "TensorFlow.js' model.save), keras (Keras' own .keras or .h5 "
          "from model.save; see docs/keras.md) or onnx (a PyTorch "
          "bidirectional RNN from torch.onnx.export; see docs/onnx.md).");
ABSL_FLAG(std::string, out, "",
          "Output model file, e.g. models/<name>/1/model.pb. Parent folders "
          "are created.");
ABSL_FLAG(bool, text, false,
          "Write protobuf text format (implied by an --out ending in "
          ".pbtxt).");
ABSL_FLAG(std::string, name, "",
          "Model name; default: the folder two levels above --out "
          "(models/<name>/<version>/model.pb), else the Keras model's name "
          "(tfjs, keras) or the ONNX graph's (onnx).");

namespace biserve {
namespace {

// The model in `input`, in format `from`, named `name` (empty: the
// importer's default).
absl::StatusOr<v1::Model> Import(const std::string& from,
                                 const std::string& input,
                                 const std::string& name) {
  if (from == "tfjs") {
    TfjsImportOptions options;
    options.model_name = name;
    return ImportTfjsLayersModel(input, options);
  }
  if (from == "keras") {
    KerasImportOptions options;
    options.model_name = name;
    return ImportKerasFile(input, options);
  }
  OnnxImportOptions options;
  options.model_name = name;
  return ImportOnnxFile(input, options);
}

// Writes `model` to `out` (text format if `text`) beside the target and
// renames it, so a server polling the repository never sees half a file.
// Returns the bytes written.
absl::StatusOr<size_t> WriteModel(const v1::Model& model,
                                  const std::string& out, bool text) {
  std::string bytes;
  if (text) {
    google::protobuf::TextFormat::Printer printer;
    printer.SetUseShortRepeatedPrimitives(true);
    printer.PrintToString(model, &bytes);
  } else if (!model.SerializeToString(&bytes)) {
    return absl::InternalError("the model does not serialise");
  }
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
  return bytes.size();
}

absl::Status Run(const std::vector<char*>& args) {
  const std::string from = absl::GetFlag(FLAGS_from);
  if (from != "tfjs" && from != "onnx" && from != "keras") {
    return absl::InvalidArgumentError(
        absl::StrCat("--from must be tfjs, keras or onnx; was '", from, "'"));
  }
  if (args.size() != 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected one input: the path of ", from == "tfjs" ? "model.json"
                                            : from == "keras"
                                                ? "the .keras or .h5 file"
                                                : "the .onnx file"));
  }
  const std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) return absl::InvalidArgumentError("--out is required");
  std::string name = absl::GetFlag(FLAGS_name);
  if (name.empty()) name = ModelNameFromPath(out);
  absl::StatusOr<v1::Model> model = Import(from, args[1], name);
  if (!model.ok()) return model.status();
  // The importers promise a model that validates; checked before anything
  // is written, so a bad model never lands in a repository.
  if (absl::StatusOr<std::shared_ptr<const Model>> valid =
          Model::Create(ModelSpecFromProto(*model));
      !valid.ok()) {
    return absl::Status(valid.status().code(),
                        absl::StrCat(args[1], ": ", valid.status().message()));
  }
  absl::StatusOr<size_t> written = WriteModel(
      *model, out, absl::GetFlag(FLAGS_text) || absl::EndsWith(out, ".pbtxt"));
  if (!written.ok()) return written.status();
  std::cerr << "biserve_convert: wrote " << out << " (model '" << model->name()
            << "', " << model->layers_size() << " layers, " << *written
            << " bytes)\n";
  return absl::OkStatus();
}

}  // namespace
}  // namespace biserve

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Converts a model to biserve's format.\n"
      "  biserve_convert --from tfjs path/model.json --out "
      "models/<name>/<version>/model.pb [--text] [--name NAME]\n"
      "  biserve_convert --from onnx path/model.onnx --out "
      "models/<name>/<version>/model.pb [--text] [--name NAME]\n"
      "  biserve_convert --from keras path/model.keras --out "
      "models/<name>/<version>/model.pb [--text] [--name NAME]");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  absl::Status status = biserve::Run(args);
  if (!status.ok()) {
    std::cerr << "biserve_convert: " << status.message() << "\n";
    return 1;
  }
  return 0;
}
