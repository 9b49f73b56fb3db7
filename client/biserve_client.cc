#include "client/biserve_client.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "proto/model_codec.h"
#include "proto/read_file.h"

namespace biserve {
namespace {

v1::OutputSelection ToProto(OutputSelection outputs) {
  switch (outputs) {
    case OutputSelection::kMerged:
      return v1::OUTPUT_SELECTION_MERGED;
    case OutputSelection::kDirections:
      return v1::OUTPUT_SELECTION_DIRECTIONS;
    case OutputSelection::kBoth:
      return v1::OUTPUT_SELECTION_BOTH;
  }
  return v1::OUTPUT_SELECTION_MERGED;
}

TensorSpec SpecFromProto(const v1::TensorSpec& proto) {
  return TensorSpec{proto.name(),
                    proto.dtype(),
                    {proto.shape().begin(), proto.shape().end()}};
}

VersionState StateFromProto(v1::ModelVersionStatus::State state) {
  switch (state) {
    case v1::ModelVersionStatus::STATE_AVAILABLE:
      return VersionState::kAvailable;
    case v1::ModelVersionStatus::STATE_FAILED:
      return VersionState::kFailed;
    case v1::ModelVersionStatus::STATE_UNLOADING:
      return VersionState::kUnloading;
    default:
      return VersionState::kLoading;
  }
}

}  // namespace

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

v1::PredictRequest MakePredictRequest(const std::string& model,
                                      absl::Span<const OwnedSequence> sequences,
                                      const PredictOptions& options) {
  v1::PredictRequest request;
  request.set_model_name(model);
  request.set_model_version(options.version);
  request.set_outputs(ToProto(options.outputs));
  request.set_return_states(options.states);
  request.set_request_id(options.request_id);
  for (const OwnedSequence& s : sequences) {
    v1::Sequence* out = request.add_sequences();
    out->set_length(s.length);
    out->mutable_features()->Assign(s.features.begin(), s.features.end());
    out->mutable_token_ids()->Assign(s.token_ids.begin(), s.token_ids.end());
    for (const std::vector<float>& state : s.initial_state) {
      v1::Tensor* t = out->add_initial_state();
      t->add_shape(static_cast<int64_t>(state.size()));
      t->mutable_values()->Assign(state.begin(), state.end());
    }
  }
  return request;
}

Prediction PredictionFromResponse(v1::PredictResponse response) {
  Prediction prediction;
  prediction.model = response.model_name();
  prediction.version = response.model_version();
  prediction.request_id = response.request_id();
  for (const v1::SequenceOutput& s : response.sequences()) {
    SequenceResult result;
    if (s.has_output()) result.output = TensorFromProto(s.output());
    if (s.has_forward()) result.forward = TensorFromProto(s.forward());
    if (s.has_backward()) result.backward = TensorFromProto(s.backward());
    for (const v1::LayerStates& layer : s.states()) {
      std::vector<Tensor> states;
      for (const v1::Tensor& t : layer.states()) {
        states.push_back(TensorFromProto(t));
      }
      result.states.push_back(std::move(states));
    }
    prediction.sequences.push_back(std::move(result));
  }
  if (response.sequences_size() > 0) {
    for (const v1::LayerStates& layer : response.sequences(0).states()) {
      prediction.state_layers.push_back(layer.layer());
    }
  }
  return prediction;
}

absl::StatusOr<std::unique_ptr<BiserveClient>> BiserveClient::Create(
    const ClientOptions& options) {
  const bool tls = !options.tls_root_certs_path.empty();
  if (options.tls_client_cert_path.empty() !=
      options.tls_client_key_path.empty()) {
    return absl::InvalidArgumentError(
        "tls_client_cert_path and tls_client_key_path go together (a client "
        "certificate needs its key)");
  }
  if (!tls && (!options.tls_client_cert_path.empty() ||
               !options.tls_server_name.empty())) {
    return absl::InvalidArgumentError(
        "a client certificate or tls_server_name needs TLS: set "
        "tls_root_certs_path (a PEM file, or \"system\")");
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (!tls) {
    credentials = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions ssl;
    if (options.tls_root_certs_path != "system") {
      absl::StatusOr<std::string> roots =
          ReadFile(options.tls_root_certs_path, "the TLS root certificates");
      if (!roots.ok()) return roots.status();
      ssl.pem_root_certs = *roots;
    }
    if (!options.tls_client_cert_path.empty()) {
      absl::StatusOr<std::string> cert =
          ReadFile(options.tls_client_cert_path, "the TLS client certificate");
      if (!cert.ok()) return cert.status();
      absl::StatusOr<std::string> key =
          ReadFile(options.tls_client_key_path, "the TLS client key");
      if (!key.ok()) return key.status();
      ssl.pem_cert_chain = *cert;
      ssl.pem_private_key = *key;
    }
    credentials = grpc::SslCredentials(ssl);
  }
  grpc::ChannelArguments args;
  if (!options.tls_server_name.empty()) {
    args.SetSslTargetNameOverride(options.tls_server_name);
  }
  args.SetMaxReceiveMessageSize(options.max_message_bytes);
  args.SetMaxSendMessageSize(options.max_message_bytes);
  if (options.keepalive_time > absl::ZeroDuration()) {
    args.SetInt(
        GRPC_ARG_KEEPALIVE_TIME_MS,
        static_cast<int>(absl::ToInt64Milliseconds(options.keepalive_time)));
    args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  }
  if (!options.load_balancing_policy.empty()) {
    args.SetLoadBalancingPolicyName(options.load_balancing_policy);
  }
  auto channel = grpc::CreateCustomChannel(options.server, credentials, args);
  if (channel == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot make a channel to ", options.server));
  }
  return std::unique_ptr<BiserveClient>(
      new BiserveClient(options, std::move(channel)));
}

BiserveClient::BiserveClient(ClientOptions options,
                             std::shared_ptr<grpc::Channel> channel)
    : options_(std::move(options)),
      channel_(std::move(channel)),
      stub_(v1::InferenceService::NewStub(channel_)),
      health_(grpc::health::v1::Health::NewStub(channel_)) {}

void BiserveClient::SetDeadline(grpc::ClientContext& context) const {
  if (options_.timeout < absl::InfiniteDuration()) {
    context.set_deadline(absl::ToChronoTime(absl::Now() + options_.timeout));
  }
}

absl::StatusOr<Prediction> BiserveClient::Predict(
    const std::string& model, absl::Span<const OwnedSequence> sequences,
    const PredictOptions& options) {
  return Predict(MakePredictRequest(model, sequences, options));
}

absl::StatusOr<Prediction> BiserveClient::Predict(
    const v1::PredictRequest& request) {
  grpc::ClientContext context;
  SetDeadline(context);
  v1::PredictResponse response;
  grpc::Status status = stub_->Predict(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return PredictionFromResponse(std::move(response));
}

std::unique_ptr<PredictionStream> BiserveClient::OpenStream() {
  auto stream = std::unique_ptr<PredictionStream>(new PredictionStream());
  stream->stream_ = stub_->PredictStream(&stream->context_);
  return stream;
}

absl::StatusOr<ModelMetadata> BiserveClient::GetModelMetadata(
    const std::string& model, int64_t version) {
  grpc::ClientContext context;
  SetDeadline(context);
  v1::GetModelMetadataRequest request;
  request.set_model_name(model);
  request.set_model_version(version);
  v1::GetModelMetadataResponse response;
  grpc::Status status = stub_->GetModelMetadata(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  ModelMetadata metadata;
  metadata.model = response.model_name();
  metadata.version = response.model_version();
  metadata.available_versions.assign(response.available_versions().begin(),
                                     response.available_versions().end());
  for (const v1::TensorSpec& spec : response.inputs()) {
    metadata.inputs.push_back(SpecFromProto(spec));
  }
  for (const v1::TensorSpec& spec : response.outputs()) {
    metadata.outputs.push_back(SpecFromProto(spec));
  }
  if (!metadata.inputs.empty()) {
    const TensorSpec& first = metadata.inputs[0];
    metadata.input.token_ids = first.name == "token_ids";
    if (!metadata.input.token_ids && first.shape.size() == 2) {
      metadata.input.input_dim = static_cast<int>(first.shape[1]);
    }
  }
  for (const v1::LayerSummary& layer : response.layers()) {
    std::vector<std::string> parts;
    if (!layer.cell().empty()) parts.push_back(layer.cell());
    if (layer.units() > 0)
      parts.push_back(absl::StrCat(layer.units(), " units"));
    if (!layer.merge_mode().empty()) parts.push_back(layer.merge_mode());
    metadata.layers.push_back(
        absl::StrCat(layer.type(), "(", absl::StrJoin(parts, ", "), ")"));
  }
  return metadata;
}

absl::StatusOr<std::vector<ModelStatus>> BiserveClient::ListModels() {
  grpc::ClientContext context;
  SetDeadline(context);
  v1::ListModelsResponse response;
  grpc::Status status =
      stub_->ListModels(&context, v1::ListModelsRequest(), &response);
  if (!status.ok()) return FromGrpcStatus(status);
  std::vector<ModelStatus> models;
  for (const v1::ModelStatus& m : response.models()) {
    ModelStatus model{m.name(), m.version_policy(), m.config_error(), {}};
    for (const v1::ModelVersionStatus& v : m.versions()) {
      model.versions.push_back(
          VersionStatus{v.version(), StateFromProto(v.state()), v.reason(),
                        absl::FromUnixMillis(v.since_unix_ms())});
    }
    models.push_back(std::move(model));
  }
  return models;
}

absl::StatusOr<bool> BiserveClient::IsServing(const std::string& service) {
  grpc::ClientContext context;
  SetDeadline(context);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status = health_->Check(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING;
}

bool PredictionStream::Send(const v1::PredictRequest& request) {
  return stream_->Write(request);
}

bool PredictionStream::Send(const std::string& model,
                            absl::Span<const OwnedSequence> sequences,
                            const PredictOptions& options) {
  return Send(MakePredictRequest(model, sequences, options));
}

void PredictionStream::CloseSend() { stream_->WritesDone(); }

std::optional<StreamAnswer> PredictionStream::Receive() {
  v1::PredictResponse response;
  if (!stream_->Read(&response)) return std::nullopt;
  StreamAnswer answer{response.request_id(), absl::UnknownError("")};
  if (response.has_error() && response.error().code() != 0) {
    answer.result =
        absl::Status(static_cast<absl::StatusCode>(response.error().code()),
                     response.error().message());
  } else {
    answer.result = PredictionFromResponse(std::move(response));
  }
  return answer;
}

absl::Status PredictionStream::Finish() {
  return FromGrpcStatus(stream_->Finish());
}

}  // namespace biserve
