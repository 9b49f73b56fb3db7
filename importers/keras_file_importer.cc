#include "importers/keras_file_importer.h"

#include <cctype>
#include <filesystem>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "importers/hdf5_file.h"
#include "importers/import_error.h"
#include "importers/json_fields.h"
#include "importers/keras_archive.h"
#include "importers/keras_config_upgrade.h"
#include "importers/keras_layer.h"
#include "importers/keras_model_config.h"
#include "importers/keras_model_converter.h"
#include "importers/keras_weight_names.h"
#include "proto/read_file.h"

namespace biserve {
namespace {

using google::protobuf::ListValue;
using google::protobuf::Struct;
using google::protobuf::Value;
using importers::Hdf5File;
using importers::Hdf5Group;
using importers::Invalid;
using importers::KerasLayer;
using importers::Weight;
using importers::WeightMap;

constexpr absl::string_view kNoConfig =
    "no model config: save the whole model (model.save)";

// Python's json writes NaN and Infinity, which JSON (and protobuf's
// parser) does not have: outside strings they are read as null.
std::string WithoutNonFiniteNumbers(absl::string_view json) {
  std::string out;
  bool in_string = false;
  for (size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < json.size()) {
        out += json[++i];
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') in_string = true;
    bool replaced = false;
    for (absl::string_view word : {"-Infinity", "Infinity", "NaN"}) {
      if (absl::StartsWith(json.substr(i), word)) {
        out += "null";
        i += word.size() - 1;
        replaced = true;
        break;
      }
    }
    if (!replaced) out += c;
  }
  return out;
}

absl::StatusOr<Struct> ParseJson(absl::string_view text,
                                 absl::string_view where) {
  Struct parsed;
  auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(text.data(), text.size()), &parsed);
  if (status.ok()) return parsed;
  parsed.Clear();
  const std::string cleaned = WithoutNonFiniteNumbers(text);
  if (google::protobuf::util::JsonStringToMessage(cleaned, &parsed).ok()) {
    return parsed;
  }
  return Invalid(
      where, absl::StrCat("not valid JSON: ", std::string(status.message())));
}

// The Keras model config and who wrote it, ready for conversion: the
// parsed JSON (which the layers point into) and the chain of layers.
struct ParsedConfig {
  std::unique_ptr<Struct> json;
  importers::KerasModelConfig model;
  importers::KerasFlavour flavour = importers::KerasFlavour::kKeras2;
};

absl::StatusOr<ParsedConfig> ParseConfig(absl::string_view text,
                                         absl::string_view keras_version,
                                         absl::string_view where) {
  absl::StatusOr<Struct> json = ParseJson(text, where);
  if (!json.ok()) return json.status();
  ParsedConfig parsed;
  parsed.json = std::make_unique<Struct>(*std::move(json));
  importers::UpgradeKerasModelConfig(*parsed.json);
  absl::StatusOr<importers::KerasModelConfig> model =
      importers::ParseKerasModelConfig(*parsed.json, where);
  if (!model.ok()) return model.status();
  parsed.model = *std::move(model);
  parsed.flavour = importers::KerasFlavourFromVersion(keras_version);
  return parsed;
}

// The chain's layer named `name`, or null.
const KerasLayer* FindLayer(const ParsedConfig& config,
                            absl::string_view name) {
  for (const KerasLayer& layer : config.model.chain.layers) {
    if (layer.name == name) return &layer;
  }
  return nullptr;
}

absl::StatusOr<v1::Model> Convert(ParsedConfig& config, WeightMap& weights,
                                  const KerasImportOptions& options,
                                  absl::string_view where) {
  return importers::ConvertKerasModel(
      config.model, config.flavour, weights,
      options.model_name.empty() ? config.model.name : options.model_name,
      where);
}

// ---- Legacy HDF5 (model.save("m.h5")): LAYOUTS.md §1.

// One layer group of model_weights: its arrays in weight_names' order.
absl::Status ReadLegacyLayer(const Hdf5Group& model_weights,
                             const std::string& layer_name,
                             const ParsedConfig& config, WeightMap& weights) {
  absl::StatusOr<Hdf5Group> group = model_weights.Group(layer_name);
  if (!group.ok()) return group.status();
  absl::StatusOr<std::vector<std::string>> names =
      group->StringList("weight_names");
  if (!names.ok()) return names.status();
  std::vector<Weight> arrays;
  for (const std::string& name : *names) {
    absl::StatusOr<Weight> array = group->FloatDataset(name);
    if (!array.ok()) return array.status();
    arrays.push_back(*std::move(array));
  }
  const KerasLayer* layer = FindLayer(config, layer_name);
  if (layer == nullptr) {
    // Not in the model's chain: its weights stay unused, and the
    // conversion says which.
    KerasLayer unknown;
    unknown.name = layer_name;
    return importers::AddLayerWeights(unknown, std::move(arrays), *names,
                                      weights);
  }
  return importers::AddLayerWeights(*layer, std::move(arrays), *names, weights);
}

absl::StatusOr<v1::Model> ImportLegacyH5(absl::string_view bytes,
                                         const KerasImportOptions& options,
                                         absl::string_view where) {
  absl::MutexLock lock(&importers::Hdf5Mutex());
  absl::StatusOr<Hdf5File> file = Hdf5File::OpenImage(bytes, where);
  if (!file.ok()) return file.status();
  const Hdf5Group root = file->Root();
  if (!root.HasAttribute("model_config")) {
    const bool weights_only =
        root.HasAttribute("layer_names") || root.HasAttribute("layer_names0");
    return Invalid(
        where,
        absl::StrCat(kNoConfig, weights_only ? "; this file holds only "
                                               "weights (model.save_weights)"
                                             : "; this HDF5 file is not a "
                                               "Keras model"));
  }
  absl::StatusOr<std::string> text = root.StringAttribute("model_config");
  if (!text.ok()) return text.status();
  const std::string version =
      root.StringAttribute("keras_version").value_or("");
  absl::StatusOr<ParsedConfig> config = ParseConfig(*text, version, where);
  if (!config.ok()) return config.status();
  absl::StatusOr<Hdf5Group> model_weights = root.Group("model_weights");
  if (!model_weights.ok()) return model_weights.status();
  absl::StatusOr<std::vector<std::string>> layer_names =
      model_weights->StringList("layer_names");
  if (!layer_names.ok()) return layer_names.status();
  WeightMap weights;
  for (const std::string& name : *layer_names) {
    if (absl::Status s =
            ReadLegacyLayer(*model_weights, name, *config, weights);
        !s.ok()) {
      return s;
    }
  }
  return Convert(*config, weights, options, where);
}

// ---- .keras (Keras 3, tf.keras 2.12-2.15): LAYOUTS.md §2.

// Keras' naming.to_snake_case: "GlobalAveragePooling1D" ->
// "global_average_pooling1d", "SimpleRNN" -> "simple_rnn".
std::string ToSnakeCase(absl::string_view class_name) {
  std::string word;
  for (char c : class_name) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '_') word += c;
  }
  auto upper = [](char c) {
    return std::isupper(static_cast<unsigned char>(c));
  };
  auto lower = [](char c) {
    return std::islower(static_cast<unsigned char>(c));
  };
  std::string step;  // (.)([A-Z][a-z]+) -> \1_\2
  for (size_t i = 0; i < word.size();) {
    if (i + 2 < word.size() && upper(word[i + 1]) && lower(word[i + 2])) {
      size_t end = i + 3;
      while (end < word.size() && lower(word[end])) ++end;
      step += word[i];
      step += '_';
      step.append(word, i + 1, end - i - 1);
      i = end;
    } else {
      step += word[i++];
    }
  }
  std::string out;  // ([a-z])([A-Z]) -> \1_\2, then lower case
  for (size_t i = 0; i < step.size();) {
    if (i + 1 < step.size() && lower(step[i]) && upper(step[i + 1])) {
      out += step[i];
      out += '_';
      out += step[i + 1];
      i += 2;
    } else {
      out += step[i++];
    }
  }
  for (char& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// The layers in Keras' model.layers, which name the weight groups: a
// Sequential's without its InputLayer, a Functional's all, in config order.
absl::StatusOr<std::vector<KerasLayer>> ModelLayers(const Struct& model_config,
                                                    absl::string_view where) {
  const bool sequential =
      importers::GetString(model_config, "class_name").value_or("") ==
      "Sequential";
  const Value* config = importers::Get(model_config, "config");
  const ListValue* list =
      config == nullptr          ? nullptr
      : config->has_list_value() ? &config->list_value()
      : config->has_struct_value()
          ? importers::GetList(config->struct_value(), "layers")
          : nullptr;
  if (list == nullptr) return Invalid(where, "the model config has no layers");
  absl::StatusOr<std::vector<KerasLayer>> layers =
      importers::ParseKerasLayers(*list);
  if (!layers.ok()) return layers.status();
  std::vector<KerasLayer> out;
  for (KerasLayer& layer : *layers) {
    if (sequential && importers::IsInputLayer(layer)) continue;
    out.push_back(std::move(layer));
  }
  return out;
}

// Appends the datasets vars/0, vars/1, ... of `group`, then those of its
// child groups: a Bidirectional's forward_layer then backward_layer
// (never its unused "layer"), anything else's in name order.
absl::Status CollectVars(const Hdf5Group& group, bool bidirectional, int depth,
                         std::vector<Weight>& out) {
  if (depth > 8) return Invalid(group.path(), "nested too deeply");
  if (group.HasChild("vars")) {
    absl::StatusOr<Hdf5Group> vars = group.Group("vars");
    if (!vars.ok()) return vars.status();
    for (int i = 0; vars->HasChild(absl::StrCat(i)); ++i) {
      absl::StatusOr<Weight> array = vars->FloatDataset(absl::StrCat(i));
      if (!array.ok()) return array.status();
      out.push_back(*std::move(array));
    }
  }
  std::vector<std::string> children;
  if (bidirectional) {
    children = {"forward_layer", "backward_layer"};
  } else {
    absl::StatusOr<std::vector<Hdf5Group::Child>> all = group.Children();
    if (!all.ok()) return all.status();
    for (const Hdf5Group::Child& child : *all) {
      if (child.group && child.name != "vars") children.push_back(child.name);
    }
  }
  for (const std::string& name : children) {
    if (!group.HasChild(name)) continue;
    absl::StatusOr<Hdf5Group> child = group.Group(name);
    if (!child.ok()) return child.status();
    if (absl::Status s = CollectVars(*child, false, depth + 1, out); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

// Keras >= 3.6 names each vars group after its object: a cross-check that
// the group found by counting is this layer's.
absl::Status CheckVarsName(const Hdf5Group& group, const KerasLayer& layer) {
  if (!group.HasChild("vars")) return absl::OkStatus();
  absl::StatusOr<Hdf5Group> vars = group.Group("vars");
  if (!vars.ok() || !vars->HasAttribute("name")) return absl::OkStatus();
  const std::string name = vars->StringAttribute("name").value_or("");
  if (name != layer.name) {
    return Invalid(layer.Label(),
                   absl::StrCat("its weights were looked for in ", group.path(),
                                ", which holds those of '", name, "'"));
  }
  return absl::OkStatus();
}

absl::Status ReadKerasV3Weights(const Hdf5Group& root,
                                const std::vector<KerasLayer>& layers,
                                const ParsedConfig& config,
                                WeightMap& weights) {
  // tf.keras 2.12-2.14 saved under _layer_checkpoint_dependencies, where a
  // layer with weights is listed (and counted) twice.
  const bool twice = !root.HasChild("layers") &&
                     root.HasChild("_layer_checkpoint_dependencies");
  absl::StatusOr<Hdf5Group> container =
      root.Group(twice ? "_layer_checkpoint_dependencies" : "layers");
  if (!container.ok()) return container.status();
  std::map<std::string, int> used;  // class group name -> next counter
  for (const KerasLayer& listed : layers) {
    const std::string base = ToSnakeCase(listed.class_name);
    const int k = used[base]++;
    const std::string group_name = k == 0 ? base : absl::StrCat(base, "_", k);
    std::vector<Weight> arrays;
    if (container->HasChild(group_name)) {
      absl::StatusOr<Hdf5Group> group = container->Group(group_name);
      if (!group.ok()) return group.status();
      if (absl::Status s = CheckVarsName(*group, listed); !s.ok()) return s;
      if (absl::Status s = CollectVars(
              *group, listed.class_name == "Bidirectional", 0, arrays);
          !s.ok()) {
        return s;
      }
    }
    if (twice && !arrays.empty()) ++used[base];
    const KerasLayer* layer = FindLayer(config, listed.name);
    if (absl::Status s = importers::AddLayerWeights(
            layer != nullptr ? *layer : listed, std::move(arrays), {}, weights);
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::Model> ImportArchive(const importers::KerasArchive& archive,
                                        const KerasImportOptions& options,
                                        absl::string_view where) {
  std::string version;
  if (!archive.metadata_json.empty()) {
    absl::StatusOr<Struct> metadata = ParseJson(archive.metadata_json, where);
    if (!metadata.ok()) return metadata.status();
    version = importers::GetString(*metadata, "keras_version").value_or("");
  }
  absl::StatusOr<ParsedConfig> config =
      ParseConfig(archive.config_json, version, where);
  if (!config.ok()) return config.status();
  absl::StatusOr<std::vector<KerasLayer>> layers =
      ModelLayers(*config->json, where);
  if (!layers.ok()) return layers.status();
  WeightMap weights;
  {
    absl::MutexLock lock(&importers::Hdf5Mutex());
    absl::StatusOr<Hdf5File> file = Hdf5File::OpenImage(
        archive.weights_h5, absl::StrCat(where, ": model.weights.h5"));
    if (!file.ok()) return file.status();
    if (absl::Status s =
            ReadKerasV3Weights(file->Root(), *layers, *config, weights);
        !s.ok()) {
      return s;
    }
  }
  return Convert(*config, weights, options, where);
}

absl::StatusOr<v1::Model> ImportContent(absl::string_view bytes,
                                        const KerasImportOptions& options,
                                        absl::string_view where) {
  if (bytes.empty()) {
    return Invalid(where, "empty file: not a Keras model (.keras or .h5)");
  }
  if (absl::StartsWith(bytes, "version https://git-lfs")) {
    return Invalid(where,
                   "a Git LFS pointer, not the model (run git lfs pull): "
                   "the repository's file itself was never fetched");
  }
  if (absl::StartsWith(bytes, importers::kHdf5Signature)) {
    return ImportLegacyH5(bytes, options, where);
  }
  if (absl::StartsWith(bytes, importers::kZipSignature) ||
      absl::StartsWith(bytes, importers::kEmptyZipSignature)) {
    absl::StatusOr<importers::KerasArchive> archive =
        importers::ReadKerasZip(bytes, where);
    if (!archive.ok()) return archive.status();
    return ImportArchive(*archive, options, where);
  }
  if (bytes.front() == '{') {
    return Invalid(where,
                   "a JSON file, not a Keras model file: a .keras zip or an "
                   "HDF5 .h5 is expected (a TensorFlow.js model.json is "
                   "converted with --from tfjs)");
  }
  return Invalid(where,
                 "neither an HDF5 file (a Keras .h5) nor a zip (a .keras): "
                 "no HDF5 or zip signature at its start");
}

// Every error starts with the file it is about.
absl::StatusOr<v1::Model> Located(absl::StatusOr<v1::Model> model,
                                  absl::string_view where) {
  if (model.ok() || absl::StartsWith(model.status().message(), where)) {
    return model;
  }
  return absl::Status(model.status().code(),
                      absl::StrCat(where, ": ", model.status().message()));
}

}  // namespace

absl::StatusOr<v1::Model> ImportKerasFile(const std::string& path,
                                          const KerasImportOptions& options) {
  if (std::filesystem::is_directory(path)) {
    absl::StatusOr<importers::KerasArchive> archive =
        importers::ReadKerasFolder(path);
    if (!archive.ok()) return archive.status();
    return Located(ImportArchive(*archive, options, path), path);
  }
  absl::StatusOr<std::string> bytes = ReadFile(path, "the Keras model file");
  if (!bytes.ok()) return bytes.status();
  return Located(ImportContent(*bytes, options, path), path);
}

absl::StatusOr<v1::Model> ImportKerasBytes(absl::string_view bytes,
                                           const KerasImportOptions& options) {
  return Located(ImportContent(bytes, options, "keras file"), "keras file");
}

}  // namespace biserve
