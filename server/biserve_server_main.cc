// biserve_server: serves the models of a model repository over gRPC.
//
// Start-up: evaluation pool and scheduler, then the gRPC server (health
// NOT_SERVING), then the first scan of the repository; the server answers
// UNAVAILABLE until that scan has loaded what it could, then reports
// SERVING. Shutdown (SIGTERM, SIGINT): health NOT_SERVING, new calls
// refused with UNAVAILABLE, queued and running requests finish within
// --drain_timeout_s, exit 0.
#include <signal.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/batching/dynamic_batch_scheduler.h"
#include "core/batching/unbatched_scheduler.h"
#include "core/common/log.h"
#include "core/common/process_tuning.h"
#include "core/common/thread_pool.h"
#include "core/eval/evaluator.h"
#include "core/kernels/packed_gemm.h"
#include "core/kernels/precision.h"
#include "core/serving/model_registry.h"
#include "core/serving/repository_watcher.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/impl/server_builder_option.h"
#include "grpcpp/impl/server_builder_plugin.h"
#include "grpcpp/resource_quota.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "importers/model_file.h"
#include "prometheus/registry.h"
#include "proto/model_config_codec.h"
#include "server/inference_service.h"
#include "server/memory_returner.h"
#include "server/metrics.h"
#include "server/metrics_http_server.h"
#include "server/open_inference_service.h"
#include "server/process_collector.h"
#include "server/request_admission.h"
#include "server/server_credentials.h"
#include "server/stop_signals.h"

ABSL_FLAG(std::string, host, "0.0.0.0",
          "Address to listen on for gRPC (0.0.0.0: every IPv4 interface; "
          "127.0.0.1: this machine only).");
ABSL_FLAG(int32_t, port, 8001,
          "gRPC port. 0 picks a free port; the log line 'listening on' "
          "names it.");
ABSL_FLAG(int32_t, metrics_port, 8002,
          "Port of the Prometheus /metrics endpoint (HTTP, or HTTPS with "
          "--metrics_tls_cert_file). 0 picks a free one.");
ABSL_FLAG(std::string, metrics_host, "",
          "Address the metrics port listens on. Empty: the value of --host. "
          "127.0.0.1 keeps /metrics on this machine while gRPC is public.");
ABSL_FLAG(std::string, metrics_tls_cert_file, "",
          "Serve /metrics over HTTPS only, with this PEM certificate chain "
          "(the server's certificate first). Needs --metrics_tls_key_file. "
          "Re-read when the file changes: new connections get the new "
          "certificate without a restart.");
ABSL_FLAG(std::string, metrics_tls_key_file, "",
          "Unencrypted PEM private key of --metrics_tls_cert_file.");
ABSL_FLAG(std::string, model_repository, "models",
          "Model repository: <dir>/<model>/<version>/model.pb (or "
          "model.pbtxt, or a PyTorch model.onnx, imported at load), with an "
          "optional <dir>/<model>/config.pbtxt. A version folder holding "
          "more than one model file is refused.");
ABSL_FLAG(int32_t, threads, 0,
          "Evaluation threads (the pool that runs a batch's directions at "
          "once). 0: one per CPU core.");
ABSL_FLAG(double, poll_interval_s, 5.0,
          "Seconds between scans of the model repository for new, changed "
          "or removed versions.");
ABSL_FLAG(int32_t, max_message_bytes, 64 << 20,
          "Largest request or response message, in bytes.");
ABSL_FLAG(int64_t, max_inflight_bytes, int64_t{256} << 20,
          "Most memory held at once by requests received and not yet "
          "answered (queued and running, over every model and RPC): their "
          "serialized size plus their parsed size; beyond it new requests "
          "get UNAVAILABLE at once. Also the quota of gRPC's own buffers of "
          "requests still arriving. At least --max_message_bytes.");
ABSL_FLAG(bool, enable_reflection, false,
          "Serve gRPC server reflection (grpcurl, grpc_cli without protos). "
          "Off by default: gRPC's reflection service parses its requests "
          "without biserve's limits on parsed memory, so enable it only "
          "where clients are trusted.");
ABSL_FLAG(int32_t, max_sequences_per_request, 1024,
          "Most sequences one Predict request may carry.");
ABSL_FLAG(int64_t, max_steps_per_sequence, 100000,
          "Most time steps one sequence may have.");
ABSL_FLAG(bool, enable_batching, true,
          "Merge concurrent requests into packed batches (per model, by the "
          "settings below and the model's config.pbtxt). false: each request "
          "is evaluated on its own as soon as a thread is free.");
ABSL_FLAG(int32_t, max_batch_size, 64,
          "Default most sequences in one batch (config.pbtxt may override).");
ABSL_FLAG(int64_t, max_batch_steps, 8192,
          "Default most time steps (sum of sequence lengths) in one batch.");
ABSL_FLAG(int64_t, max_queue_delay_us, 2000,
          "Default longest time a request waits for its batch to fill while "
          "another batch is being computed (an idle server never waits).");
ABSL_FLAG(int32_t, max_queue_size, 1024,
          "Default most requests waiting per model version (or in all, "
          "without batching); beyond it new requests get UNAVAILABLE at once.");
ABSL_FLAG(int32_t, batch_threads, 0,
          "Batches computed at the same time. 0: one per two evaluation "
          "threads (each batch runs its two directions at once).");
ABSL_FLAG(biserve::Precision, precision, biserve::Precision::kFp32,
          "FP32 or BF16: the precision of models whose config.pbtxt names "
          "none. BF16 stores weights in bfloat16 and accumulates in float32 "
          "(docs/precision.md); on a CPU without AVX512_BF16 such models "
          "serve in FP32 and say so (log, metadata).");
ABSL_FLAG(bool, sched_batch, true,
          "Run the server's threads under Linux's SCHED_BATCH policy: a "
          "thread woken by network traffic waits for the running batch's "
          "time slice instead of preempting it, so fewer thread switches on "
          "a busy CPU (+6-13% requests/s on one CPU, bench/RESULTS.md). "
          "false: threads keep the policy the server was started with.");
ABSL_FLAG(bool, allow_non_finite, false,
          "Accept NaN and Inf in features and initial states (they then "
          "propagate into the outputs). By default such requests get "
          "INVALID_ARGUMENT.");
ABSL_FLAG(double, max_connection_age_s, 0.0,
          "Close each client connection (with a GOAWAY, letting its calls "
          "finish) after this many seconds, so that clients re-resolve and "
          "spread over replicas added since they connected. 0: never.");
ABSL_FLAG(double, min_ping_interval_s, 10.0,
          "Shortest interval between HTTP/2 keepalive pings a client may "
          "send, also on idle connections; faster pings are answered with a "
          "GOAWAY (too_many_pings).");
ABSL_FLAG(double, drain_timeout_s, 30.0,
          "On SIGTERM or SIGINT, how long queued and running requests may "
          "take to finish before the server exits.");
ABSL_FLAG(std::string, tls_cert_file, "",
          "Serve gRPC over TLS on --port with this PEM certificate chain "
          "(the server's certificate first). Needs --tls_key_file. Re-read "
          "every --tls_refresh_interval_s: a rotated certificate is served "
          "without a restart. Default: plaintext.");
ABSL_FLAG(std::string, tls_key_file, "",
          "PEM private key (unencrypted) of --tls_cert_file.");
ABSL_FLAG(std::string, tls_client_ca_file, "",
          "mTLS: require every client to present a certificate signed by "
          "one of the CAs in this PEM file (re-read like the certificate). "
          "Needs --tls_cert_file and --tls_key_file.");
ABSL_FLAG(int32_t, tls_refresh_interval_s, 60,
          "Seconds between re-reads of the --tls_* files; new connections "
          "use what was read, open connections keep their session.");

namespace biserve {
namespace {

// Takes gRPC's reflection service out of a server. Linking its plugin
// registers it for every server (a static initializer); this option, given
// to one ServerBuilder, removes it there.
class WithoutReflection final : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>*
                         plugins) override {
    std::erase_if(*plugins, [](const auto& plugin) {
      return plugin->name() == "proto_server_reflection";
    });
  }
};

// Waits until no call has arrived for kQuietBeforeShutdown, or until
// `deadline`. Until then new calls get UNAVAILABLE from the services (and
// clients retry elsewhere); gRPC's own shutdown would cancel them instead.
void WaitForCallsToStop(const InferenceService& service, absl::Time deadline) {
  constexpr absl::Duration kQuietBeforeShutdown = absl::Milliseconds(250);
  while (true) {
    const absl::Time now = absl::Now();
    const absl::Time quiet_at = service.last_call() + kQuietBeforeShutdown;
    if (now >= quiet_at || now >= deadline) return;
    absl::SleepFor(std::min(quiet_at, deadline) - now);
  }
}

// The batching scheduler, or without batching one request per executor.
absl::StatusOr<std::unique_ptr<BatchScheduler>> MakeScheduler(
    bool batching_enabled, int batch_threads, ServerMetrics& metrics,
    ThreadPool* pool) {
  if (batching_enabled) {
    auto dynamic = DynamicBatchScheduler::Create(
        {.num_batch_threads = batch_threads, .observer = &metrics}, pool);
    if (!dynamic.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--batch_threads: ", dynamic.status().message()));
    }
    return std::unique_ptr<BatchScheduler>(*std::move(dynamic));
  }
  auto unbatched = UnbatchedScheduler::Create(
      {.num_executors = batch_threads,
       .max_queue_size = absl::GetFlag(FLAGS_max_queue_size),
       .observer = &metrics},
      pool);
  if (!unbatched.ok()) return unbatched.status();
  return std::unique_ptr<BatchScheduler>(*std::move(unbatched));
}

// Message sizes, gRPC's memory quota, connection age and keepalive.
void ConfigureTransport(int64_t max_message_bytes,
                        grpc::ServerBuilder& builder) {
  // gRPC 1.51 buffers a message until its length prefix is satisfied, and
  // only then checks it against the maximum: the quota bounds what its
  // transport holds, resetting streams (ENHANCE_YOUR_CALM, which clients
  // see as RESOURCE_EXHAUSTED) beyond it.
  // One message of the largest size always fits beside the rest.
  grpc::ResourceQuota transport_quota("biserve_transport");
  transport_quota.Resize(static_cast<size_t>(
      absl::GetFlag(FLAGS_max_inflight_bytes) + max_message_bytes));
  builder.SetResourceQuota(transport_quota);
  builder.SetMaxReceiveMessageSize(absl::GetFlag(FLAGS_max_message_bytes));
  builder.SetMaxSendMessageSize(absl::GetFlag(FLAGS_max_message_bytes));
  if (const double age = absl::GetFlag(FLAGS_max_connection_age_s); age > 0) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS,
                               static_cast<int>(age * 1000));
    // Calls still open on an aged connection get the drain time to finish.
    builder.AddChannelArgument(
        GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
        static_cast<int>(absl::GetFlag(FLAGS_drain_timeout_s) * 1000));
  }
  // Clients that keep idle connections alive (the C++ and Python clients'
  // keepalive option) are welcome at the interval they were told.
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
      static_cast<int>(absl::GetFlag(FLAGS_min_ping_interval_s) * 1000));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // gRPC sets SO_REUSEPORT by default, so a second server on a port in use
  // would start and take half of its connections; refuse to start instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
}

// --metrics_host, or --host when it is empty.
std::string MetricsHost() {
  return absl::GetFlag(FLAGS_metrics_host).empty()
             ? absl::GetFlag(FLAGS_host)
             : absl::GetFlag(FLAGS_metrics_host);
}

// /metrics for `registry` and the process, as the --metrics_* flags say.
absl::StatusOr<std::unique_ptr<MetricsHttpServer>> StartMetricsServer(
    std::shared_ptr<prometheus::Registry> registry) {
  return MetricsHttpServer::Create(
      {.host = MetricsHost(),
       .port = absl::GetFlag(FLAGS_metrics_port),
       .tls_cert_file = absl::GetFlag(FLAGS_metrics_tls_cert_file),
       .tls_key_file = absl::GetFlag(FLAGS_metrics_tls_key_file),
       .collectables = {std::move(registry),
                        std::make_shared<ProcessCollector>()}});
}

// Scans --model_repository into `registry`, warming models up on `pool`.
absl::StatusOr<std::unique_ptr<RepositoryWatcher>> MakeWatcher(
    ModelRegistry* registry, ThreadPool* pool) {
  RepositoryWatcher::Options watch;
  watch.repository_path = absl::GetFlag(FLAGS_model_repository);
  watch.poll_interval = absl::Seconds(absl::GetFlag(FLAGS_poll_interval_s));
  // One list and one loader (importers/model_file.h): a format added
  // there is accepted in version folders at once.
  watch.model_file_names = RepositoryModelFileNames();
  watch.load_model = LoadAnyModelFile;
  watch.default_precision = absl::GetFlag(FLAGS_precision);
  watch.load_config = ReadModelConfig;
  watch.warm_up = [pool](const Model& model) { return WarmUp(model, *pool); };
  return RepositoryWatcher::Create(std::move(watch), registry);
}

// The gRPC server on --host:--port with `credentials` (health checks and
// reflection share the port, so its credentials), serving `services`; its
// bound port in `port`. Null, logged, if it cannot listen.
std::unique_ptr<grpc::Server> StartGrpcServer(
    const std::shared_ptr<grpc::ServerCredentials>& credentials,
    int64_t max_message_bytes, const std::vector<grpc::Service*>& services,
    int* port) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  if (!absl::GetFlag(FLAGS_enable_reflection)) {
    builder.SetOption(std::make_unique<WithoutReflection>());
  }
  ConfigureTransport(max_message_bytes, builder);
  const std::string address =
      absl::StrCat(absl::GetFlag(FLAGS_host), ":", absl::GetFlag(FLAGS_port));
  builder.AddListeningPort(address, credentials, port);
  for (grpc::Service* service : services) builder.RegisterService(service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || *port == 0) {
    LogError(absl::StrCat("cannot listen on ", address,
                          " (port in use, or not an address of this "
                          "machine?)"));
    return nullptr;
  }
  return server;
}

// Shutdown after `signal`: every health status NOT_SERVING, new calls
// refused, queued and running requests finished (up to --drain_timeout_s),
// UNAVAILABLE answered until calls stop, then gRPC's own shutdown.
void DrainAndStop(int signal, grpc::HealthCheckServiceInterface& health,
                  InferenceService& service, BatchScheduler& scheduler,
                  grpc::Server& server) {
  const absl::Duration drain =
      absl::Seconds(absl::GetFlag(FLAGS_drain_timeout_s));
  const absl::Time deadline = absl::Now() + drain;
  LogInfo(absl::StrCat("received ", signal == SIGTERM ? "SIGTERM" : "SIGINT",
                       "; draining for up to ", absl::FormatDuration(drain)));
  health.Shutdown();  // every service NOT_SERVING from now on
  service.StartDraining();
  scheduler.Drain(deadline);
  WaitForCallsToStop(service, deadline);
  // Calls still open (streams) are cancelled at the deadline.
  server.Shutdown(absl::ToChronoTime(std::max(deadline, absl::Now())));
}

// The --tls_* flags.
TlsOptions TlsFromFlags() {
  return {.cert_file = absl::GetFlag(FLAGS_tls_cert_file),
          .key_file = absl::GetFlag(FLAGS_tls_key_file),
          .client_ca_file = absl::GetFlag(FLAGS_tls_client_ca_file),
          .refresh_interval_s = absl::GetFlag(FLAGS_tls_refresh_interval_s)};
}

// What one request may carry (--max_sequences_per_request, ...).
RequestLimits LimitsFromFlags() {
  return {.max_sequences_per_request =
              absl::GetFlag(FLAGS_max_sequences_per_request),
          .max_steps_per_sequence = absl::GetFlag(FLAGS_max_steps_per_sequence),
          .allow_non_finite = absl::GetFlag(FLAGS_allow_non_finite)};
}

// Evaluation threads (--threads, 0: one per core) and batches computed at
// once (--batch_threads, 0: one per two evaluation threads; without
// batching, one executor per evaluation thread).
struct ThreadCounts {
  int threads = 1;
  int batch_threads = 1;
};
ThreadCounts ThreadCountsFromFlags(bool batching_enabled) {
  const int threads_flag = absl::GetFlag(FLAGS_threads);
  const int threads =
      threads_flag > 0
          ? threads_flag
          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int batch_threads = !batching_enabled ? threads
                            : absl::GetFlag(FLAGS_batch_threads) > 0
                                ? absl::GetFlag(FLAGS_batch_threads)
                                : std::max(1, threads / 2);
  return {.threads = threads, .batch_threads = batch_threads};
}

// The server-wide batching defaults (--max_batch_size, ...).
BatchingOptions BatchingFromFlags() {
  return {.max_batch_size = absl::GetFlag(FLAGS_max_batch_size),
          .max_batch_steps = absl::GetFlag(FLAGS_max_batch_steps),
          .max_queue_delay_us = absl::GetFlag(FLAGS_max_queue_delay_us),
          .max_queue_size = absl::GetFlag(FLAGS_max_queue_size)};
}

// --max_message_bytes positive and --max_inflight_bytes at least as large.
absl::Status CheckMemoryFlags() {
  const int64_t max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  const int64_t max_inflight_bytes = absl::GetFlag(FLAGS_max_inflight_bytes);
  if (max_message_bytes > 0 && max_inflight_bytes >= max_message_bytes) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--max_inflight_bytes (", max_inflight_bytes,
                   ") must be at least --max_message_bytes (",
                   max_message_bytes, "), which must be positive"));
}

// The model registry, reporting into `metrics` and, once the gRPC server
// has set it, into `health`'s per-model statuses.
absl::StatusOr<std::unique_ptr<ModelRegistry>> MakeRegistry(
    const BatchingOptions& batching,
    std::atomic<grpc::HealthCheckServiceInterface*>& health,
    ServerMetrics& metrics) {
  return ModelRegistry::Create(
      {.default_batching = batching,
       .on_serving_change =
           [&health](const std::string& model, bool serving) {
             if (auto* h = health.load()) h->SetServingStatus(model, serving);
           },
       .on_version_change =
           [&metrics](const std::string& model, int64_t version,
                      VersionState state) {
             metrics.VersionChanged(model, version, state);
           },
       .version_metrics =
           [&metrics](const std::string& model, int64_t version) {
             return metrics.ForVersion(model, version);
           }});
}

// The first scan of the repository, each model's health from it, then
// polling and serving: health "" SERVING.
void StartServing(RepositoryWatcher& watcher, const ModelRegistry& registry,
                  InferenceService& service,
                  grpc::HealthCheckServiceInterface& health) {
  watcher.PollOnce();
  for (const ModelStatus& model : registry.List()) {
    health.SetServingStatus(model.name, registry.IsServing(model.name));
  }
  watcher.Start();
  service.StartServing();
  health.SetServingStatus("", true);
  LogInfo(absl::StrCat("ready: serving models from ",
                       absl::GetFlag(FLAGS_model_repository)));
}

// The log line that names the ports (tests and operators read the gRPC
// port from it when --port is 0).
void LogListening(int port, const TlsOptions& tls, int threads,
                  bool batching_enabled, const MetricsHttpServer& metrics) {
  LogInfo(absl::StrCat(
      "listening on ", absl::GetFlag(FLAGS_host), ":", port, " (gRPC; ",
      TlsModeName(tls), "; ", threads, " evaluation threads; batching ",
      batching_enabled ? "on" : "off", "); metrics on ", MetricsHost(), ":",
      metrics.port(), "/metrics", metrics.tls() ? " (HTTPS)" : ""));
}

// Logs `prefix` and `status`; returns `exit_code`.
int Fail(absl::string_view prefix, const absl::Status& status, int exit_code) {
  LogError(absl::StrCat(prefix, status.message()));
  return exit_code;
}

// What biserve_build_info's labels and the thread gauges say.
BuildInfo BuildInfoFromFlags(bool batching_enabled,
                             const ThreadCounts& counts) {
  return BuildInfo{.version = BISERVE_VERSION,
                   .compiler = absl::StrCat("gcc ", __VERSION__),
                   .gemm_kernel = PackedGemmIsa(),
                   .bf16_kernel = PackedGemmBf16Isa(),
                   .default_precision = std::string(
                       PrecisionName(absl::GetFlag(FLAGS_precision))),
                   .batching = batching_enabled,
                   .threads = counts.threads,
                   .batch_threads = counts.batch_threads};
}

RequestAdmission::Options AdmissionFromFlags(MemoryReturner* returner) {
  return {.max_inflight_bytes = absl::GetFlag(FLAGS_max_inflight_bytes),
          .returner = returner};
}

int Run() {
  // TLS files are checked before anything listens: a bad one stops the
  // server (exit 1) rather than serving plaintext or failing every
  // handshake.
  const TlsOptions tls = TlsFromFlags();
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      MakeServerCredentials(tls);
  if (!credentials.ok()) return Fail("TLS: ", credentials.status(), 1);
  const bool batching_enabled = absl::GetFlag(FLAGS_enable_batching);
  const ThreadCounts counts = ThreadCountsFromFlags(batching_enabled);

  // Metrics first: every part below reports into them.
  auto metrics_registry = std::make_shared<prometheus::Registry>();
  ServerMetrics metrics(*metrics_registry,
                        BuildInfoFromFlags(batching_enabled, counts));
  auto metrics_server = StartMetricsServer(metrics_registry);
  if (!metrics_server.ok()) {
    return Fail("cannot serve /metrics (--metrics_* flags): ",
                metrics_server.status(), 1);
  }
  auto pool = ThreadPool::Create({.num_threads = counts.threads});
  if (!pool.ok()) return Fail("--threads: ", pool.status(), 2);
  const BatchingOptions batching = BatchingFromFlags();
  if (absl::Status s = batching.Validate(); !s.ok()) return Fail("--", s, 2);
  auto scheduler = MakeScheduler(batching_enabled, counts.batch_threads,
                                 metrics, pool->get());
  if (!scheduler.ok()) return Fail("", scheduler.status(), 2);
  // Health per model follows the registry; set once the server exists.
  std::atomic<grpc::HealthCheckServiceInterface*> health{nullptr};
  auto registry = MakeRegistry(batching, health, metrics);
  if (!registry.ok()) return Fail("", registry.status(), 2);
  auto watcher = MakeWatcher(registry->get(), pool->get());
  if (!watcher.ok()) {
    return Fail("--model_repository / --poll_interval_s: ", watcher.status(),
                2);
  }
  if (absl::Status s = CheckMemoryFlags(); !s.ok()) return Fail("", s, 2);

  MemoryReturner returner({});
  RequestAdmission admission(AdmissionFromFlags(&returner));
  InferenceService service(
      {.limits = LimitsFromFlags(),
       .batching_enabled = batching_enabled,
       .max_reply_bytes = absl::GetFlag(FLAGS_max_message_bytes)},
      registry->get(), scheduler->get(), &metrics, &admission);
  OpenInferenceService open_inference(registry->get(), &service);
  int port = 0;
  std::unique_ptr<grpc::Server> server =
      StartGrpcServer(*credentials, absl::GetFlag(FLAGS_max_message_bytes),
                      {&service, &open_inference}, &port);
  if (server == nullptr) return 1;
  grpc::HealthCheckServiceInterface* health_service =
      server->GetHealthCheckService();
  // (The overloads without a service name would set every model's status.)
  health_service->SetServingStatus("", false);
  health.store(health_service);
  LogListening(port, tls, counts.threads, batching_enabled, **metrics_server);
  StartServing(**watcher, **registry, service, *health_service);

  DrainAndStop(StopSignals::Wait(), *health_service, service, **scheduler,
               *server);
  watcher->reset();
  LogInfo("stopped");
  return 0;
}

}  // namespace
}  // namespace biserve

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Serves bidirectional RNN models over gRPC.\n"
      "  biserve_server --model_repository models --port 8001\n"
      "Each <model>/<version>/ folder holds one model.pb, model.pbtxt,\n"
      "model.onnx (torch.onnx.export's file), or model.keras or model.h5\n"
      "(Keras' model.save), the last three imported when they load.\n"
      "Service biserve.v1.InferenceService (proto/biserve/v1/"
      "inference.proto), inference.GRPCInferenceService (Open Inference\n"
      "Protocol), grpc.health.v1.Health, and server reflection with\n"
      "--enable_reflection.");
  absl::ParseCommandLine(argc, argv);
  biserve::PrepareProcessForEvaluation();
  if (absl::GetFlag(FLAGS_sched_batch)) {
    // Before any thread starts, so that gRPC's threads and ours inherit it.
    if (absl::Status s = biserve::UseBatchScheduling(); !s.ok()) {
      biserve::LogWarning(absl::StrCat(
          s.message(), "; running under the default scheduling policy"));
    }
  }
  // Before any thread of ours starts: from here on SIGTERM and SIGINT only
  // start (or are absorbed by) the drain, whichever thread receives them.
  if (absl::Status status = biserve::StopSignals::Install(); !status.ok()) {
    biserve::LogError(status.message());
    return 1;
  }
  return biserve::Run();
}
