#include "importers/tfjs_importer.h"

#include <filesystem>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "importers/import_error.h"
#include "importers/json_fields.h"
#include "importers/keras_layer.h"
#include "importers/keras_model_config.h"
#include "importers/keras_model_converter.h"
#include "importers/tfjs_weights_manifest.h"
#include "proto/read_file.h"

namespace biserve {
namespace {

using google::protobuf::Struct;
using importers::Invalid;

absl::StatusOr<Struct> ReadModelJson(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path, "model.json");
  if (!text.ok()) return text.status();
  Struct root;
  auto parsed = google::protobuf::util::JsonStringToMessage(*text, &root);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": not valid JSON: ", std::string(parsed.message())));
  }
  return root;
}

// The Keras model config in model.json's modelTopology, and who wrote it.
struct Topology {
  const Struct* model_config = nullptr;  // points into the model.json
  importers::KerasFlavour flavour = importers::KerasFlavour::kKeras2;
};

absl::StatusOr<Topology> FindTopology(const Struct& root,
                                      const std::string& path) {
  const Struct* topology = importers::GetObject(root, "modelTopology");
  if (topology == nullptr) {
    return Invalid(path,
                   "no modelTopology: not a TensorFlow.js Layers model (a "
                   "graph model from tf.saved_model cannot be imported)");
  }
  Topology found;
  // tensorflowjs_converter nests the Keras config under model_config;
  // TF.js' own model.save makes modelTopology the config itself.
  found.model_config = importers::GetObject(*topology, "model_config");
  if (found.model_config == nullptr) found.model_config = topology;
  found.flavour = importers::KerasFlavourFromVersion(
      importers::GetString(*topology, "keras_version").value_or(""));
  return found;
}

}  // namespace

absl::StatusOr<v1::Model> ImportTfjsLayersModel(
    const std::string& model_json_path, const TfjsImportOptions& options) {
  absl::StatusOr<Struct> root = ReadModelJson(model_json_path);
  if (!root.ok()) return root.status();
  absl::StatusOr<Topology> topology = FindTopology(*root, model_json_path);
  if (!topology.ok()) return topology.status();
  absl::StatusOr<importers::WeightMap> weights = importers::ReadTfjsWeights(
      *root, std::filesystem::path(model_json_path).parent_path());
  if (!weights.ok()) return weights.status();
  absl::StatusOr<importers::KerasModelConfig> config =
      importers::ParseKerasModelConfig(*topology->model_config,
                                       model_json_path);
  if (!config.ok()) return config.status();
  return importers::ConvertKerasModel(
      *config, topology->flavour, *weights,
      options.model_name.empty() ? config->name : options.model_name,
      model_json_path);
}

}  // namespace biserve
