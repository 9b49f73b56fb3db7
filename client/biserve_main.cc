// biserve: the command-line client.
//
//   biserve [--server host:port] predict --model NAME [--input FILE]
//   biserve metadata --model NAME | list | health [--model NAME]
//
// Exit status: 0 on success, else the gRPC status code of the failure (5
// NOT_FOUND, 3 INVALID_ARGUMENT, 14 UNAVAILABLE, ...); local problems use
// the same codes (an unreadable file 5, bad JSON or flags 3), and a health
// check that is not SERVING exits 14.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "client/biserve_client.h"
#include "client/connection_flags.h"
#include "google/protobuf/util/json_util.h"
#include "proto/eval_json.h"
#include "proto/input_file.h"

ABSL_FLAG(double, timeout_s, 30, "Deadline of the call, in seconds.");
ABSL_FLAG(std::string, model, "", "Model name (predict, metadata, health).");
ABSL_FLAG(int64_t, version, 0, "Model version; 0 for the newest available.");
ABSL_FLAG(biserve::InputFile, input, {"-"},
          "predict: JSON request file, or - for standard input. Either "
          "biserve_eval's form {\"sequences\": [[[f, ...], ...], ...]} (token "
          "ids: [[id, ...], ...]), or a biserve.v1.PredictRequest in protobuf "
          "JSON ({\"model_name\": ..., \"sequences\": [{\"features\": "
          "[...]}]}).");
ABSL_FLAG(std::string, outputs, "merged",
          "predict: merged (the model's output), directions (the last "
          "Bidirectional layer's forward and backward outputs) or both.");
ABSL_FLAG(bool, states, false, "predict: also return the final states.");

namespace biserve {
namespace {

constexpr char kUsage[] =
    "The biserve command-line client.\n"
    "  biserve [--server host:port] predict --model NAME [--input FILE|-] "
    "[--outputs merged|directions|both] [--states]\n"
    "  biserve [--server host:port] metadata --model NAME [--version V]\n"
    "  biserve [--server host:port] list\n"
    "  biserve [--server host:port] health [--model NAME]\n"
    "TLS: --tls_roots FILE|system, and for mTLS --tls_client_cert FILE "
    "--tls_client_key FILE; --tls_server_name NAME when connecting by IP.\n"
    "Prints JSON on standard output. Exit status: 0, or the gRPC status code "
    "of the failure (e.g. 5 NOT_FOUND, 3 INVALID_ARGUMENT, 14 UNAVAILABLE; "
    "health exits 14 when not SERVING).";

int Fail(const absl::Status& status) {
  std::cerr << "biserve: " << absl::StatusCodeToString(status.code()) << ": "
            << status.message() << "\n";
  return static_cast<int>(status.code());
}

std::string ToJson(const google::protobuf::Message& message) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  return json;
}

// The JSON in protobuf's form names fields of PredictRequest; biserve_eval's
// form has only "sequences" (and "initial_state") of bare lists.
bool IsProtoJson(const std::string& json) {
  return json.find("\"model_name\"") != std::string::npos ||
         json.find("\"modelName\"") != std::string::npos ||
         json.find("\"features\"") != std::string::npos ||
         json.find("\"token_ids\"") != std::string::npos ||
         json.find("\"tokenIds\"") != std::string::npos;
}

int Predict(BiserveClient& client) {
  absl::StatusOr<std::string> json = ReadInput(absl::GetFlag(FLAGS_input));
  if (!json.ok()) return Fail(json.status());
  v1::PredictRequest request;
  if (IsProtoJson(*json)) {
    auto parsed = google::protobuf::util::JsonStringToMessage(*json, &request);
    if (!parsed.ok()) {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("--input is not a biserve.v1.PredictRequest in JSON: ",
                       std::string(parsed.message()))));
    }
  }
  if (!absl::GetFlag(FLAGS_model).empty()) {
    request.set_model_name(absl::GetFlag(FLAGS_model));
  }
  if (request.model_name().empty()) {
    return Fail(absl::InvalidArgumentError(
        "--model is required (or model_name in the JSON request)"));
  }
  if (absl::GetFlag(FLAGS_version) != 0) {
    request.set_model_version(absl::GetFlag(FLAGS_version));
  }
  if (!IsProtoJson(*json)) {
    // The simple form needs to know what the model takes per step.
    absl::StatusOr<ModelMetadata> metadata =
        client.GetModelMetadata(request.model_name(), request.model_version());
    if (!metadata.ok()) return Fail(metadata.status());
    absl::StatusOr<std::vector<OwnedSequence>> sequences =
        ParseEvalInput(*json, metadata->input);
    if (!sequences.ok()) return Fail(sequences.status());
    v1::PredictRequest built = MakePredictRequest(
        request.model_name(), *sequences, {.version = request.model_version()});
    request.mutable_sequences()->Swap(built.mutable_sequences());
  }
  const std::string outputs = absl::GetFlag(FLAGS_outputs);
  if (outputs == "merged") {
    request.set_outputs(v1::OUTPUT_SELECTION_MERGED);
  } else if (outputs == "directions") {
    request.set_outputs(v1::OUTPUT_SELECTION_DIRECTIONS);
  } else if (outputs == "both") {
    request.set_outputs(v1::OUTPUT_SELECTION_BOTH);
  } else {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--outputs must be merged, directions or both; got \"",
                     outputs, "\"")));
  }
  if (absl::GetFlag(FLAGS_states)) request.set_return_states(true);

  absl::StatusOr<Prediction> prediction = client.Predict(request);
  if (!prediction.ok()) return Fail(prediction.status());
  // {"model_name": ..., "model_version": ..., "results": [...]}: the
  // results exactly as biserve_eval prints them.
  std::string results = FormatEvalOutput(prediction->sequences);
  std::cout << "{\"model_name\": \"" << prediction->model
            << "\", \"model_version\": " << prediction->version << ", "
            << results.substr(1);
  if (results.empty() || results.back() != '\n') std::cout << "\n";
  return 0;
}

int Run(const std::string& command) {
  ClientOptions options = ClientOptionsFromFlags();
  options.timeout = absl::Seconds(absl::GetFlag(FLAGS_timeout_s));
  absl::StatusOr<std::unique_ptr<BiserveClient>> client =
      BiserveClient::Create(options);
  if (!client.ok()) return Fail(client.status());
  BiserveClient& c = **client;
  // A new channel's first connection attempt can fail and be retried after
  // gRPC's backoff (about 1 s; seen under ThreadSanitizer as ENOENT): wait
  // for it, briefly, as biserve_loadtest does. A server that cannot be
  // reached still fails the call below with UNAVAILABLE and its reason.
  c.channel()->WaitForConnected(
      std::chrono::system_clock::now() +
      std::min(std::chrono::seconds(3),
               std::chrono::duration_cast<std::chrono::seconds>(
                   absl::ToChronoSeconds(options.timeout))));

  if (command == "predict") return Predict(c);
  if (command == "metadata") {
    if (absl::GetFlag(FLAGS_model).empty()) {
      return Fail(absl::InvalidArgumentError("metadata needs --model"));
    }
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + options.timeout));
    v1::GetModelMetadataRequest request;
    request.set_model_name(absl::GetFlag(FLAGS_model));
    request.set_model_version(absl::GetFlag(FLAGS_version));
    v1::GetModelMetadataResponse response;
    absl::Status status =
        FromGrpcStatus(c.stub().GetModelMetadata(&context, request, &response));
    if (!status.ok()) return Fail(status);
    std::cout << ToJson(response);
    return 0;
  }
  if (command == "list") {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + options.timeout));
    v1::ListModelsResponse response;
    absl::Status status = FromGrpcStatus(
        c.stub().ListModels(&context, v1::ListModelsRequest(), &response));
    if (!status.ok()) return Fail(status);
    std::cout << ToJson(response);
    return 0;
  }
  if (command == "health") {
    const std::string service = absl::GetFlag(FLAGS_model);
    absl::StatusOr<bool> serving = c.IsServing(service);
    if (!serving.ok()) return Fail(serving.status());
    std::cout << "{\"service\": \"" << service << "\", \"status\": \""
              << (*serving ? "SERVING" : "NOT_SERVING") << "\"}\n";
    return *serving ? 0 : static_cast<int>(absl::StatusCode::kUnavailable);
  }
  return Fail(absl::InvalidArgumentError(
      absl::StrCat("unknown command \"", command,
                   "\"; commands: predict, metadata, list, health (--help)")));
}

}  // namespace
}  // namespace biserve

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(biserve::kUsage);
  biserve::ListConnectionFlagsInHelp();
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() != 2) {
    std::cerr << biserve::kUsage << "\n";
    return static_cast<int>(absl::StatusCode::kInvalidArgument);
  }
  return biserve::Run(args[1]);
}
