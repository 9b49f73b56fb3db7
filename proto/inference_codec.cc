#include "proto/inference_codec.h"

#include <string>
#include <utility>
#include <variant>

#include "absl/strings/str_cat.h"
#include "core/common/quoted_input.h"
#include "core/eval/field_error.h"

namespace biserve {
namespace {

void TensorToProto(Tensor tensor, v1::Tensor* proto) {
  proto->mutable_shape()->Assign(tensor.shape.begin(), tensor.shape.end());
  proto->mutable_values()->Assign(tensor.values.begin(), tensor.values.end());
}

int64_t DirectionParameters(const RnnDirection& d) {
  return d.kernel.size() + d.recurrent_kernel.size() + d.input_bias.size() +
         d.recurrent_bias.size();
}

void AddSpec(const std::string& name, const char* dtype,
             std::vector<int64_t> shape, const std::string& description,
             google::protobuf::RepeatedPtrField<v1::TensorSpec>* specs) {
  v1::TensorSpec* spec = specs->Add();
  spec->set_name(name);
  spec->set_dtype(dtype);
  spec->mutable_shape()->Assign(shape.begin(), shape.end());
  spec->set_description(description);
}

// INVALID_ARGUMENT if `s` carries the kind of input `model` does not take:
// features for an Embedding model, token ids for a feature model.
absl::Status CheckInputKind(const v1::Sequence& s, const Model& model,
                            absl::string_view model_name) {
  const std::string which =
      model_name.empty() ? std::string("the model")
                         : absl::StrCat("model ", QuotedInput(model_name));
  if (model.takes_token_ids() && s.features_size() > 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        which, " takes token_ids (an Embedding input), but the request sent ",
        "features"));
  }
  if (!model.takes_token_ids() && s.token_ids_size() > 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(which, " takes features (", model.input_dim(),
                     " floats per time step), but the request sent token_ids"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckSequenceCount(int64_t count, const RequestLimits& limits) {
  if (count > limits.max_sequences_per_request) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sequences: at most ", limits.max_sequences_per_request,
        " sequences per request (the server's --max_sequences_per_request); "
        "got ",
        count, ". Split the request."));
  }
  return absl::OkStatus();
}

namespace {

// The length `s` gives, or infers from its values when it gives 0, within
// the server's limit. Errors name fields relative to the sequence.
absl::StatusOr<int64_t> SequenceLength(const v1::Sequence& s,
                                       const Model& model,
                                       const RequestLimits& limits) {
  int64_t length = s.length();
  if (length < 0) {
    return FieldError(
        "length",
        absl::StrCat(" must be at least 1 time step (or 0 to infer it); got ",
                     length));
  }
  if (length == 0) {  // inferred from the values
    if (model.takes_token_ids()) {
      length = s.token_ids_size();
    } else if (s.features_size() % model.input_dim() == 0) {
      length = s.features_size() / model.input_dim();
    } else {
      return FieldError(
          "features",
          absl::StrCat(": expected shape [length, input_dim] = [length, ",
                       model.input_dim(), "], got ", s.features_size(),
                       " values, not a multiple of ", model.input_dim()));
    }
  }
  if (length > limits.max_steps_per_sequence) {
    return FieldError(
        "length",
        absl::StrCat(": at most ", limits.max_steps_per_sequence,
                     " time steps (the server's --max_steps_per_sequence); "
                     "got ",
                     length));
  }
  return length;
}

// A view of `s` (which must outlive it), checked against `model` and
// `limits` and marked validated. Errors name fields relative to the
// sequence.
absl::StatusOr<SequenceInput> SequenceFromProto(const v1::Sequence& s,
                                                const Model& model,
                                                const RequestLimits& limits,
                                                absl::string_view model_name) {
  // The wrong kind of input first: otherwise an inferred length of 0
  // (no ids) is reported, which names the wrong problem.
  if (absl::Status kind = CheckInputKind(s, model, model_name); !kind.ok()) {
    return kind;
  }
  absl::StatusOr<int64_t> length = SequenceLength(s, model, limits);
  if (!length.ok()) return length.status();
  SequenceInput in;
  in.length = *length;
  in.features = absl::MakeConstSpan(s.features().data(), s.features_size());
  in.token_ids = absl::MakeConstSpan(s.token_ids().data(), s.token_ids_size());
  for (int k = 0; k < s.initial_state_size(); ++k) {
    const v1::Tensor& state = s.initial_state(k);
    if (state.shape_size() > 1 ||
        (state.shape_size() == 1 && state.shape(0) != state.values_size())) {
      return FieldError(absl::StrCat("initial_state[", k, "]"),
                        absl::StrCat(": expected shape [units], got shape ",
                                     ShapeString({state.shape().begin(),
                                                  state.shape().end()}),
                                     " with ", state.values_size(), " values"));
    }
    in.initial_state.push_back(
        absl::MakeConstSpan(state.values().data(), state.values_size()));
  }
  // Validated here, once: Evaluate trusts the mark.
  absl::Status valid = ValidateAndMark(model, limits.allow_non_finite, in);
  if (!valid.ok()) return valid;
  return in;
}

}  // namespace

absl::StatusOr<std::vector<SequenceInput>> SequencesFromRequest(
    const v1::PredictRequest& request, const Model& model,
    const RequestLimits& limits) {
  const int count = request.sequences_size();
  if (count == 0) {
    return absl::InvalidArgumentError(
        "sequences is empty; send at least one sequence");
  }
  if (absl::Status s = CheckSequenceCount(count, limits); !s.ok()) return s;
  std::vector<SequenceInput> inputs;
  inputs.reserve(count);
  for (int i = 0; i < count; ++i) {
    absl::StatusOr<SequenceInput> in = SequenceFromProto(
        request.sequences(i), model, limits, request.model_name());
    if (!in.ok()) {
      return UnderParent(absl::StrCat("sequences[", i, "]"), in.status());
    }
    inputs.push_back(*std::move(in));
  }
  return inputs;
}

EvalOptions EvalOptionsFromRequest(const v1::PredictRequest& request,
                                   const RequestLimits& limits) {
  EvalOptions options;
  options.output = request.outputs() != v1::OUTPUT_SELECTION_DIRECTIONS;
  options.directions = request.outputs() != v1::OUTPUT_SELECTION_MERGED;
  options.states = request.return_states();
  options.allow_non_finite = limits.allow_non_finite;
  return options;
}

void ResultsToResponse(const Model& model, std::vector<SequenceResult> results,
                       v1::PredictResponse* response) {
  std::vector<const BidirectionalLayer*> layers;
  for (const StackLayer& layer : model.layers()) {
    if (const auto* b = std::get_if<BidirectionalLayer>(&layer)) {
      layers.push_back(b);
    }
  }
  response->mutable_sequences()->Reserve(static_cast<int>(results.size()));
  for (SequenceResult& result : results) {
    v1::SequenceOutput* out = response->add_sequences();
    if (!result.output.empty()) {
      TensorToProto(std::move(result.output), out->mutable_output());
    }
    if (!result.forward.empty()) {
      TensorToProto(std::move(result.forward), out->mutable_forward());
      TensorToProto(std::move(result.backward), out->mutable_backward());
    }
    for (size_t l = 0; l < result.states.size(); ++l) {
      v1::LayerStates* states = out->add_states();
      if (l < layers.size()) states->set_layer(layers[l]->name);
      for (Tensor& state : result.states[l]) {
        TensorToProto(std::move(state), states->add_states());
      }
    }
  }
}

namespace {

// The request's inputs: features or token ids, and the first Bidirectional
// layer's optional initial states.
void InputSpecs(const Model& model,
                google::protobuf::RepeatedPtrField<v1::TensorSpec>* inputs) {
  if (model.takes_token_ids()) {
    AddSpec("token_ids", "int32", {-1},
            absl::StrCat("one token id per time step, in [0, ",
                         model.embedding()->embeddings.rows(), ")"),
            inputs);
  } else {
    AddSpec("features", "float32", {-1, model.input_dim()},
            "float features per time step, row-major", inputs);
  }
  const BidirectionalLayer& first =
      model.bidirectional(model.first_bidirectional());
  for (const StateSpec& state : first.states) {
    AddSpec(absl::StrCat("initial_state/", first.name, "/", state.name),
            "float32", {state.units},
            "optional: all of the first Bidirectional layer's states, in "
            "this order, or none (zeros)",
            inputs);
  }
}

// The outputs: the model's, the last Bidirectional layer's directions, and
// every Bidirectional layer's final states. Time axes are -1.
void OutputSpecs(const Model& model,
                 google::protobuf::RepeatedPtrField<v1::TensorSpec>* outputs) {
  if (model.output_size() > 0) {
    std::vector<int64_t> shape = {model.output_size()};
    if (model.returns_sequences()) shape.insert(shape.begin(), -1);
    AddSpec("output", "float32", shape, "the model's output", outputs);
  }
  const BidirectionalLayer& last =
      model.bidirectional(model.last_bidirectional());
  for (const Direction which : {Direction::kForward, Direction::kBackward}) {
    const absl::string_view name = DirectionName(which);
    std::vector<int64_t> shape = {last.direction(which).units};
    if (last.return_sequences) shape.insert(shape.begin(), -1);
    AddSpec(std::string(name), "float32", shape,
            absl::StrCat("the last Bidirectional layer's ", name,
                         " output (outputs: DIRECTIONS or BOTH)"),
            outputs);
  }
  for (const StackLayer& layer : model.layers()) {
    const auto* b = std::get_if<BidirectionalLayer>(&layer);
    if (b == nullptr) continue;
    for (const StateSpec& state : b->states) {
      AddSpec(absl::StrCat("state/", b->name, "/", state.name), "float32",
              {state.units}, "final state (return_states)", outputs);
    }
  }
}

void BidirectionalSummary(const BidirectionalLayer& b, v1::LayerSummary* s) {
  s->set_name(b.name);
  s->set_type("Bidirectional");
  std::string cell(CellTypeName(b.forward.cell));
  if (b.backward.cell != b.forward.cell) {
    absl::StrAppend(&cell, "/", CellTypeName(b.backward.cell));
  }
  s->set_cell(cell);
  s->set_units(b.forward.units);
  s->set_merge_mode(std::string(MergeModeName(b.merge_mode)));
  s->set_return_sequences(b.return_sequences);
  s->set_return_state(b.return_state);
  s->set_output_size(b.output_size());
  s->set_parameters(DirectionParameters(b.forward) +
                    DirectionParameters(b.backward));
}

// The summary of a layer other than Bidirectional, whose input has `width`
// values per step or vector (all but Dense keep it).
void OtherLayerSummary(const StackLayer& layer, int width,
                       v1::LayerSummary* s) {
  s->set_output_size(width);
  if (const auto* d = std::get_if<DenseLayer>(&layer)) {
    s->set_name(d->name);
    s->set_type("Dense");
    s->set_units(d->units());
    s->set_output_size(d->units());
    s->set_parameters(d->kernel.size() + d->bias.size());
  } else if (const auto* a = std::get_if<ActivationLayer>(&layer)) {
    s->set_name(a->name);
    s->set_type("Activation");
  } else if (const auto* bn = std::get_if<BatchNormalizationLayer>(&layer)) {
    s->set_name(bn->name);
    s->set_type("BatchNormalization");
    s->set_parameters(bn->gamma.size() + bn->beta.size() +
                      bn->moving_mean.size() + bn->moving_variance.size());
  } else if (const auto* ln = std::get_if<LayerNormalizationLayer>(&layer)) {
    s->set_name(ln->name);
    s->set_type("LayerNormalization");
    s->set_parameters(ln->gamma.size() + ln->beta.size());
  } else if (const auto* p = std::get_if<GlobalPoolingLayer>(&layer)) {
    s->set_name(p->name);
    s->set_type(p->pooling == PoolingType::kMax ? "GlobalMaxPooling1D"
                                                : "GlobalAveragePooling1D");
  }
}

// One summary per layer of the file: Embedding or Masking, then the stack.
void LayerSummaries(
    const Model& model,
    google::protobuf::RepeatedPtrField<v1::LayerSummary>* layers) {
  if (model.embedding()) {
    v1::LayerSummary* s = layers->Add();
    s->set_name(model.embedding()->name);
    s->set_type("Embedding");
    s->set_output_size(static_cast<int>(model.embedding()->embeddings.cols()));
    s->set_return_sequences(true);
    s->set_parameters(model.embedding()->embeddings.size());
  }
  if (model.mask_value()) {
    v1::LayerSummary* s = layers->Add();
    s->set_type("Masking");
    s->set_output_size(model.input_dim());
    s->set_return_sequences(true);
  }
  int width = model.embedding()
                  ? static_cast<int>(model.embedding()->embeddings.cols())
                  : model.input_dim();
  for (const StackLayer& layer : model.layers()) {
    v1::LayerSummary* s = layers->Add();
    if (const auto* b = std::get_if<BidirectionalLayer>(&layer)) {
      BidirectionalSummary(*b, s);
    } else {
      OtherLayerSummary(layer, width, s);
    }
    width = s->output_size();
  }
}

}  // namespace

void ModelMetadataToProto(const ServableModel& servable,
                          const std::vector<int64_t>& available_versions,
                          bool batching_enabled, const RequestLimits& limits,
                          v1::GetModelMetadataResponse* response) {
  const Model& model = *servable.model;
  response->set_model_name(servable.name);
  response->set_model_version(servable.version);
  response->mutable_available_versions()->Assign(available_versions.begin(),
                                                 available_versions.end());
  InputSpecs(model, response->mutable_inputs());
  OutputSpecs(model, response->mutable_outputs());
  LayerSummaries(model, response->mutable_layers());
  v1::BatchingSettings* batching = response->mutable_batching();
  batching->set_enabled(batching_enabled);
  batching->set_max_batch_size(servable.batching.max_batch_size);
  batching->set_max_batch_steps(servable.batching.max_batch_steps);
  batching->set_max_queue_delay_us(servable.batching.max_queue_delay_us);
  batching->set_max_queue_size(servable.batching.max_queue_size);
  response->set_max_sequences_per_request(limits.max_sequences_per_request);
  response->set_max_steps_per_sequence(limits.max_steps_per_sequence);
  response->set_declared_time_steps(model.declared_time_steps());
  response->set_precision(std::string(PrecisionName(model.precision())));
  response->set_precision_note(
      PrecisionFallbackReason(model.requested_precision(), model.precision()));
}

void ModelStatusesToProto(const std::vector<ModelStatus>& statuses,
                          v1::ListModelsResponse* response) {
  for (const ModelStatus& status : statuses) {
    v1::ModelStatus* model = response->add_models();
    model->set_name(status.name);
    model->set_version_policy(status.version_policy);
    model->set_config_error(status.config_error);
    for (const VersionStatus& v : status.versions) {
      v1::ModelVersionStatus* version = model->add_versions();
      version->set_version(v.version);
      switch (v.state) {
        case VersionState::kLoading:
          version->set_state(v1::ModelVersionStatus::STATE_LOADING);
          break;
        case VersionState::kAvailable:
          version->set_state(v1::ModelVersionStatus::STATE_AVAILABLE);
          break;
        case VersionState::kFailed:
          version->set_state(v1::ModelVersionStatus::STATE_FAILED);
          break;
        case VersionState::kUnloading:
          version->set_state(v1::ModelVersionStatus::STATE_UNLOADING);
          break;
      }
      version->set_reason(v.reason);
      version->set_since_unix_ms(absl::ToUnixMillis(v.since));
    }
  }
}

}  // namespace biserve
