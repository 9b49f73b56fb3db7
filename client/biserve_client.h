// BiserveClient: a C++ client of biserve.v1.InferenceService and the
// standard health service, for programs that link it.
//
// Results come back as core types (SequenceResult, Tensor, ModelStatus),
// errors as absl::Status with the server's code and message.
//
// Thread-safety: a BiserveClient may be used from many threads at once (one
// channel, multiplexed). A PredictionStream belongs to one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "biserve/v1/inference.grpc.pb.h"
#include "core/eval/evaluator.h"
#include "core/serving/model_registry.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/channel.h"
#include "proto/eval_json.h"

namespace biserve {

struct ClientOptions {
  std::string server = "localhost:8001";  // host:port
  // TLS with the PEM root certificates in this file ("system" for the
  // system's roots); empty for plaintext.
  std::string tls_root_certs_path;
  // mTLS: this PEM certificate chain and its (unencrypted) PEM private key
  // are presented to a server that requires client certificates
  // (--tls_client_ca_file). Both or neither; they need tls_root_certs_path.
  std::string tls_client_cert_path;
  std::string tls_client_key_path;
  // The name the server's certificate must carry, instead of the host of
  // `server`: for connecting by IP address (or through a tunnel) to a server
  // whose certificate names its DNS name. Needs tls_root_certs_path.
  std::string tls_server_name;
  // Largest message either way. gRPC's own default refuses replies over
  // 4 MB, less than one batch's outputs often are.
  int max_message_bytes = 64 << 20;
  // HTTP/2 keepalive pings on an idle connection; zero turns them off.
  // The server accepts one every --min_ping_interval_s (10 s by default).
  absl::Duration keepalive_time = absl::ZeroDuration();
  // gRPC load-balancing policy over the addresses `server` resolves to:
  // "round_robin" spreads calls over every replica behind a headless
  // Kubernetes Service (`dns:///biserve.ns.svc.cluster.local:8001`); empty
  // keeps gRPC's default, pick_first (one connection, one replica).
  std::string load_balancing_policy;
  // Deadline of each call.
  absl::Duration timeout = absl::Seconds(30);
};

enum class OutputSelection { kMerged, kDirections, kBoth };

struct PredictOptions {
  int64_t version = 0;  // 0: the newest available
  OutputSelection outputs = OutputSelection::kMerged;
  bool states = false;
  std::string request_id;
};

struct Prediction {
  std::string model;
  int64_t version = 0;  // the version that computed it
  std::string request_id;
  // One per sequence sent, in order.
  std::vector<SequenceResult> sequences;
  // The Bidirectional layer each entry of SequenceResult::states belongs to.
  std::vector<std::string> state_layers;
};

struct TensorSpec {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;  // -1 for the time axis
};

struct ModelMetadata {
  std::string model;
  int64_t version = 0;
  std::vector<int64_t> available_versions;
  InputKind input;  // token ids, or input_dim features per step
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
  // "Bidirectional(LSTM, 16 units, concat)", "Dense(1)", ...
  std::vector<std::string> layers;
};

// A request of a stream, answered in completion order.
struct StreamAnswer {
  std::string request_id;
  absl::StatusOr<Prediction> result;
};

class PredictionStream;

// Builds a request message (for programs that send one many times).
v1::PredictRequest MakePredictRequest(const std::string& model,
                                      absl::Span<const OwnedSequence> sequences,
                                      const PredictOptions& options);
// Turns a reply into a Prediction.
Prediction PredictionFromResponse(v1::PredictResponse response);
// grpc::Status into absl::Status (same code and message).
absl::Status FromGrpcStatus(const grpc::Status& status);

class BiserveClient {
 public:
  // INVALID_ARGUMENT for unusable options (a client certificate without
  // its key, TLS settings without tls_root_certs_path); NOT_FOUND for a
  // certificate or key file that cannot be opened. Connects lazily: a server
  // that is down, or a TLS handshake that fails, shows on the first call
  // (UNAVAILABLE).
  static absl::StatusOr<std::unique_ptr<BiserveClient>> Create(
      const ClientOptions& options);

  absl::StatusOr<Prediction> Predict(const std::string& model,
                                     absl::Span<const OwnedSequence> sequences,
                                     const PredictOptions& options = {});
  // The same with a ready request message.
  absl::StatusOr<Prediction> Predict(const v1::PredictRequest& request);

  // A PredictStream call; requests go with Send and answers come with
  // Receive, in completion order.
  std::unique_ptr<PredictionStream> OpenStream();

  absl::StatusOr<ModelMetadata> GetModelMetadata(const std::string& model,
                                                 int64_t version = 0);
  absl::StatusOr<std::vector<ModelStatus>> ListModels();
  // Whether `service` ("" for the whole server, or a model name) is
  // SERVING; NOT_FOUND for an unknown name.
  absl::StatusOr<bool> IsServing(const std::string& service = "");

  // The underlying stub and channel, for callers that need raw messages.
  v1::InferenceService::Stub& stub() { return *stub_; }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  const ClientOptions& options() const { return options_; }

 private:
  BiserveClient(ClientOptions options, std::shared_ptr<grpc::Channel> channel);
  void SetDeadline(grpc::ClientContext& context) const;

  const ClientOptions options_;
  const std::shared_ptr<grpc::Channel> channel_;
  const std::unique_ptr<v1::InferenceService::Stub> stub_;
  const std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

class PredictionStream {
 public:
  // False once the stream is broken (Finish says why).
  bool Send(const v1::PredictRequest& request);
  bool Send(const std::string& model, absl::Span<const OwnedSequence> sequences,
            const PredictOptions& options);
  // No more requests.
  void CloseSend();
  // The next answer, or nullopt when the stream has ended.
  std::optional<StreamAnswer> Receive();
  // The stream's final status; call after Receive returned nullopt.
  absl::Status Finish();

 private:
  friend class BiserveClient;
  PredictionStream() = default;

  grpc::ClientContext context_;
  std::unique_ptr<
      grpc::ClientReaderWriter<v1::PredictRequest, v1::PredictResponse>>
      stream_;
};

}  // namespace biserve
