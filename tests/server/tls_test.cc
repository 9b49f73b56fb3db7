// TLS and mTLS end to end: real biserve_server processes over loopback with
// certificates made by the test (tests/server/make_test_certs.sh, openssl),
// real handshakes from the C++ client, the biserve CLI and the load test,
// certificate rotation on a live server, and start-up refusing bad files.
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/biserve_client.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "inference/grpc_predict_v2.grpc.pb.h"
#include "tests/server/command.h"
#include "tests/server/reflected_services.h"
#include "tests/server/server_process.h"

namespace biserve {
namespace {

using ::biserve::testing::RunCommand;
using ::biserve::testing::ServerProcess;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kModels[] = "--model_repository=" BISERVE_SOURCE_DIR "/models";

// Two unrelated PKIs, "a" and "b", made once per test process:
// <dir>/a_ca.pem, a_server.pem/.key, a_client.pem/.key, and b_... alike.
class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(
        absl::StrCat(::testing::TempDir(), "/tls_test_", getpid()));
    ASSERT_EQ(RunCommand(absl::StrCat("rm -rf ", *dir_, " && mkdir -p ", *dir_))
                  .exit_code,
              0);
    for (const char* name : {"a", "b"}) {
      const auto made = RunCommand(
          absl::StrCat(BISERVE_SOURCE_DIR "/tests/server/make_test_certs.sh ",
                       *dir_, " ", name));
      ASSERT_EQ(made.exit_code, 0) << made.out;
    }
  }
  static void TearDownTestSuite() {
    RunCommand(absl::StrCat("rm -rf ", *dir_));
    delete dir_;
    dir_ = nullptr;
  }

  // A file of the PKIs: File("a_ca.pem").
  static std::string File(const std::string& name) {
    return absl::StrCat(*dir_, "/", name);
  }

  // Server flags for TLS with PKI `pki`'s server certificate, and for mTLS
  // (clients signed by `pki`'s CA) when `mutual`.
  static std::vector<std::string> TlsFlags(const std::string& pki,
                                           bool mutual) {
    std::vector<std::string> flags = {
        kModels, absl::StrCat("--tls_cert_file=", File(pki + "_server.pem")),
        absl::StrCat("--tls_key_file=", File(pki + "_server.key"))};
    if (mutual) {
      flags.push_back(
          absl::StrCat("--tls_client_ca_file=", File(pki + "_ca.pem")));
    }
    return flags;
  }

  // A client of `address` trusting `ca_pki`'s CA (plaintext when empty),
  // presenting `client_pki`'s client certificate when not empty.
  static std::unique_ptr<BiserveClient> Client(
      const std::string& address, const std::string& ca_pki,
      const std::string& client_pki = "", const std::string& server_name = "") {
    ClientOptions options;
    options.server = address;
    options.timeout = absl::Seconds(20);
    if (!ca_pki.empty()) options.tls_root_certs_path = File(ca_pki + "_ca.pem");
    if (!client_pki.empty()) {
      options.tls_client_cert_path = File(client_pki + "_client.pem");
      options.tls_client_key_path = File(client_pki + "_client.key");
    }
    options.tls_server_name = server_name;
    auto client = BiserveClient::Create(options);
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? *std::move(client) : nullptr;
  }

  // The brackets model on two strings, with every output and the states.
  static v1::PredictRequest BracketsRequest() {
    v1::PredictRequest request;
    request.set_model_name("brackets");
    request.set_outputs(v1::OUTPUT_SELECTION_BOTH);
    request.set_return_states(true);
    for (const std::vector<int64_t>& ids : std::vector<std::vector<int64_t>>{
             {6, 4, 15, 15, 2, 9, 18, 3, 7}, {27, 2, 28, 29}}) {
      request.add_sequences()->mutable_token_ids()->Assign(ids.begin(),
                                                           ids.end());
    }
    return request;
  }

  // Predict of BracketsRequest on `client`'s channel: the reply, or the
  // failed call's status.
  static absl::StatusOr<v1::PredictResponse> CallPredict(
      BiserveClient& client) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    v1::PredictResponse response;
    const grpc::Status status =
        client.stub().Predict(&context, BracketsRequest(), &response);
    if (!status.ok()) return FromGrpcStatus(status);
    return response;
  }

  // biserve_server with `args` as a user starts it, in `dir_` (so that
  // relative paths name its files), stopped after 60 s if it does start.
  static biserve::testing::CommandResult RunServer(const std::string& args) {
    return RunCommand(absl::StrCat(
        "cd ", *dir_, " && timeout 60 " BISERVE_BIN_DIR "/biserve_server ",
        "--host=127.0.0.1 --port=0 --metrics_port=0 ", kModels, " ", args));
  }

  static std::string* dir_;
};

std::string* TlsTest::dir_ = nullptr;

TEST_F(TlsTest, ClientTrustingTheCaGetsExactlyThePlaintextServersAnswer) {
  auto plain = ServerProcess::Start({kModels});
  std::vector<std::string> tls_flags = TlsFlags("a", /*mutual=*/false);
  tls_flags.push_back("--enable_reflection");
  auto tls = ServerProcess::Start(tls_flags);
  ASSERT_NE(plain, nullptr);
  ASSERT_NE(tls, nullptr);
  EXPECT_THAT(plain->Log(), HasSubstr("(gRPC; plaintext;"));
  EXPECT_THAT(tls->Log(), HasSubstr("(gRPC; TLS;"));

  auto plain_client = Client(plain->address(), "");
  auto tls_client = Client(tls->address(), "a");
  const auto expected = CallPredict(*plain_client);
  const auto got = CallPredict(*tls_client);
  ASSERT_TRUE(expected.ok()) << expected.status();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->sequences_size(), 2);
  EXPECT_TRUE(
      google::protobuf::util::MessageDifferencer::Equals(*expected, *got))
      << "plaintext:\n"
      << expected->DebugString() << "\nTLS:\n"
      << got->DebugString();
  // Health, the Open Inference Protocol and reflection share the TLS port.
  const auto serving = tls_client->IsServing("brackets");
  ASSERT_TRUE(serving.ok()) << serving.status();
  EXPECT_TRUE(*serving);
  grpc::ClientContext live_context;
  live_context.set_deadline(std::chrono::system_clock::now() +
                            std::chrono::seconds(20));
  inference::ServerLiveResponse live;
  const grpc::Status live_status =
      inference::GRPCInferenceService::NewStub(tls_client->channel())
          ->ServerLive(&live_context, inference::ServerLiveRequest(), &live);
  EXPECT_TRUE(live_status.ok()) << live_status.error_message();
  EXPECT_TRUE(live.live());
  const std::string services =
      ::biserve::testing::ReflectedServices(tls_client->channel());
  EXPECT_THAT(services, HasSubstr("biserve.v1.InferenceService"));
  EXPECT_THAT(services, HasSubstr("inference.GRPCInferenceService"));
  // ... and only there: a plaintext channel to the TLS port gets nothing.
  EXPECT_EQ(::biserve::testing::ReflectedServices(
                Client(tls->address(), "")->channel()),
            "");
  EXPECT_EQ(tls->Stop(), 0);
  EXPECT_EQ(plain->Stop(), 0);
}

TEST_F(TlsTest, PlaintextClientOnTheTlsPortFailsAndTheServerKeepsServing) {
  auto tls = ServerProcess::Start(TlsFlags("a", /*mutual=*/false));
  ASSERT_NE(tls, nullptr);
  for (int i = 0; i < 3; ++i) {
    auto plain_client = Client(tls->address(), "");
    const auto refused = CallPredict(*plain_client);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable)
        << refused.status();
  }
  const auto served = CallPredict(*Client(tls->address(), "a"));
  EXPECT_TRUE(served.ok()) << served.status();
  EXPECT_EQ(tls->Stop(), 0);
}

TEST_F(TlsTest, ClientThatDoesNotTrustTheServersCaFails) {
  auto tls = ServerProcess::Start(TlsFlags("a", /*mutual=*/false));
  ASSERT_NE(tls, nullptr);
  const auto untrusted = CallPredict(*Client(tls->address(), "b"));
  EXPECT_EQ(untrusted.status().code(), absl::StatusCode::kUnavailable)
      << untrusted.status();
  const auto trusted = CallPredict(*Client(tls->address(), "a"));
  EXPECT_TRUE(trusted.ok()) << trusted.status();
  EXPECT_EQ(tls->Stop(), 0);
}

TEST_F(TlsTest, ServerNameOverrideChecksTheCertificateAgainstThatName) {
  auto tls = ServerProcess::Start(TlsFlags("a", /*mutual=*/false));
  ASSERT_NE(tls, nullptr);
  // The certificate names localhost, 127.0.0.1 and biserve.test.
  const auto named =
      CallPredict(*Client(tls->address(), "a", "", "biserve.test"));
  EXPECT_TRUE(named.ok()) << named.status();
  const auto wrong =
      CallPredict(*Client(tls->address(), "a", "", "elsewhere.test"));
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kUnavailable)
      << wrong.status();
  EXPECT_EQ(tls->Stop(), 0);
}

TEST_F(TlsTest, ClientOptionsThatCannotWorkAreRefusedAtCreate) {
  ClientOptions cert_without_key{.server = "127.0.0.1:1"};
  cert_without_key.tls_root_certs_path = File("a_ca.pem");
  cert_without_key.tls_client_cert_path = File("a_client.pem");
  EXPECT_EQ(BiserveClient::Create(cert_without_key).status().code(),
            absl::StatusCode::kInvalidArgument);
  ClientOptions cert_without_tls{.server = "127.0.0.1:1"};
  cert_without_tls.tls_client_cert_path = File("a_client.pem");
  cert_without_tls.tls_client_key_path = File("a_client.key");
  EXPECT_EQ(BiserveClient::Create(cert_without_tls).status().code(),
            absl::StatusCode::kInvalidArgument);
  ClientOptions missing_key{.server = "127.0.0.1:1"};
  missing_key.tls_root_certs_path = File("a_ca.pem");
  missing_key.tls_client_cert_path = File("a_client.pem");
  missing_key.tls_client_key_path = File("missing.key");
  EXPECT_EQ(BiserveClient::Create(missing_key).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(TlsTest, MutualTlsRefusesClientsWithoutACertificateFromItsCa) {
  auto mtls = ServerProcess::Start(TlsFlags("a", /*mutual=*/true));
  ASSERT_NE(mtls, nullptr);
  EXPECT_THAT(mtls->Log(), HasSubstr("(gRPC; mTLS;"));
  const auto no_cert = CallPredict(*Client(mtls->address(), "a"));
  EXPECT_EQ(no_cert.status().code(), absl::StatusCode::kUnavailable)
      << no_cert.status();
  const auto other_ca = CallPredict(*Client(mtls->address(), "a", "b"));
  EXPECT_EQ(other_ca.status().code(), absl::StatusCode::kUnavailable)
      << other_ca.status();
  const auto plaintext = CallPredict(*Client(mtls->address(), ""));
  EXPECT_EQ(plaintext.status().code(), absl::StatusCode::kUnavailable)
      << plaintext.status();
  auto client = Client(mtls->address(), "a", "a");
  const auto served = CallPredict(*client);
  ASSERT_TRUE(served.ok()) << served.status();
  EXPECT_EQ(served->sequences_size(), 2);
  const auto serving = client->IsServing();
  ASSERT_TRUE(serving.ok()) << serving.status();
  EXPECT_TRUE(*serving);
  EXPECT_EQ(mtls->Stop(), 0);
}

TEST_F(TlsTest, CliAndLoadTestTakeTheTlsFlags) {
  auto mtls = ServerProcess::Start(TlsFlags("a", /*mutual=*/true));
  ASSERT_NE(mtls, nullptr);
  const std::string roots = absl::StrCat(" --tls_roots=", File("a_ca.pem"));
  const std::string identity =
      absl::StrCat(" --tls_client_cert=", File("a_client.pem"),
                   " --tls_client_key=", File("a_client.key"));
  const std::string cli = absl::StrCat(
      BISERVE_BIN_DIR "/biserve --timeout_s=20 --server=", mtls->address());

  const auto health = RunCommand(absl::StrCat(cli, roots, identity, " health"));
  EXPECT_EQ(health.exit_code, 0) << health.out;
  EXPECT_THAT(health.out, HasSubstr("\"SERVING\""));
  const auto predict = RunCommand(absl::StrCat(
      cli, roots, identity,
      " --tls_server_name=biserve.test predict --input=" BISERVE_SOURCE_DIR
      "/models/brackets/sample_request.json"));
  EXPECT_EQ(predict.exit_code, 0) << predict.out;
  EXPECT_THAT(predict.out, HasSubstr("\"model_name\": \"brackets\""));
  // The probe of deploy/k8s/tls/deployment.yaml and compose.tls.yaml: by
  // IP, checking the name localhost, the server's own certificate as the
  // client's.
  const auto probe = RunCommand(absl::StrCat(
      BISERVE_BIN_DIR "/biserve --timeout_s=20 --server=", mtls->address(),
      " --tls_server_name=localhost", roots,
      " --tls_client_cert=", File("a_server.pem"),
      " --tls_client_key=", File("a_server.key"), " health"));
  EXPECT_EQ(probe.exit_code, 0) << probe.out;
  // Without the client certificate: refused, UNAVAILABLE (14).
  const auto refused = RunCommand(absl::StrCat(cli, roots, " health"));
  EXPECT_EQ(refused.exit_code, 14) << refused.out;
  // A certificate without its key is a usage error (3).
  const auto no_key = RunCommand(absl::StrCat(
      cli, roots, " --tls_client_cert=", File("a_client.pem"), " health"));
  EXPECT_EQ(no_key.exit_code, 3) << no_key.out;

  const std::string report = absl::StrCat(File("loadtest_report.json"));
  const auto load = RunCommand(absl::StrCat(
      BISERVE_BIN_DIR "/biserve_loadtest --server=", mtls->address(), roots,
      identity,
      " --model=brackets --warmup_s=0 --concurrency=2 --requests=40 "
      "--seq_len=1:20 --out=",
      report));
  EXPECT_EQ(load.exit_code, 0) << load.out;
  std::ifstream in(report);
  const std::string json((std::istreambuf_iterator<char>(in)), {});
  EXPECT_THAT(json, HasSubstr("\"errors\": {}")) << json;
  EXPECT_THAT(json, ::testing::ContainsRegex("\"requests\": [1-9]")) << json;
  // The load test without the certificate gets no answer at all.
  const auto load_refused = RunCommand(absl::StrCat(
      BISERVE_BIN_DIR "/biserve_loadtest --server=", mtls->address(), roots,
      " --model=brackets --warmup_s=0 --requests=5 --timeout_s=20"));
  EXPECT_NE(load_refused.exit_code, 0) << load_refused.out;
  EXPECT_EQ(mtls->Stop(), 0);
}

// How the files of a certificate are replaced on disk.
enum class Layout {
  // A Kubernetes Secret volume: tls.crt -> ..data/tls.crt, ..data ->
  // ..<timestamp>; an update writes a new ..<timestamp> folder and renames
  // a new ..data link over the old one, all three files at once.
  kKubernetesSecret,
  // Plain files, each written under a temporary name and renamed over the
  // old one (one at a time).
  kRenamedFiles,
};

// (Not a parameterised test: ServerProcess names its log file after the
// test, and a parameterised test's name holds a '/'.)
class TlsRotationTest : public TlsTest {
 protected:
  // Starts a server on PKI a's files in a volume of `layout`, rotates them
  // to PKI b's, and checks new and old connections.
  void RotateAndCheck(Layout layout);

  void MakeVolume(Layout layout) {
    layout_ = layout;
    volume_ = File(layout == Layout::kKubernetesSecret ? "secret_volume"
                                                       : "plain_files");
    ASSERT_EQ(
        RunCommand(absl::StrCat("rm -rf ", volume_, " && mkdir -p ", volume_))
            .exit_code,
        0);
  }

  // Puts PKI `pki`'s server certificate, key and CA in the volume as
  // tls.crt, tls.key and ca.crt, the way the layout does.
  void Publish(const std::string& pki) {
    const std::string copies[][2] = {{pki + "_server.pem", "tls.crt"},
                                     {pki + "_server.key", "tls.key"},
                                     {pki + "_ca.pem", "ca.crt"}};
    if (layout_ == Layout::kKubernetesSecret) {
      const std::string version = absl::StrCat("..", pki, "_version");
      ASSERT_EQ(mkdir(absl::StrCat(volume_, "/", version).c_str(), 0755), 0);
      for (const auto& [from, to] : copies) {
        Copy(File(from), absl::StrCat(volume_, "/", version, "/", to));
      }
      const std::string link = absl::StrCat(volume_, "/..data_tmp");
      ASSERT_EQ(symlink(version.c_str(), link.c_str()), 0);
      ASSERT_EQ(rename(link.c_str(), (volume_ + "/..data").c_str()), 0);
      for (const auto& [from, to] : copies) {
        // The top-level names point into ..data once and for all.
        const std::string top = absl::StrCat(volume_, "/", to);
        struct stat unused;
        if (lstat(top.c_str(), &unused) != 0) {
          ASSERT_EQ(symlink(("..data/" + to).c_str(), top.c_str()), 0);
        }
      }
    } else {
      for (const auto& [from, to] : copies) {
        const std::string target = absl::StrCat(volume_, "/", to);
        Copy(File(from), target + ".tmp");
        ASSERT_EQ(rename((target + ".tmp").c_str(), target.c_str()), 0);
      }
    }
  }

  static void Copy(const std::string& from, const std::string& to) {
    std::ifstream in(from, std::ios::binary);
    std::ofstream out(to, std::ios::binary);
    out << in.rdbuf();
    ASSERT_TRUE(out.good()) << to;
  }

  Layout layout_ = Layout::kKubernetesSecret;
  std::string volume_;
};

void TlsRotationTest::RotateAndCheck(Layout layout) {
  MakeVolume(layout);
  Publish("a");
  ASSERT_FALSE(HasFatalFailure());
  auto server = ServerProcess::Start(
      {kModels, absl::StrCat("--tls_cert_file=", volume_, "/tls.crt"),
       absl::StrCat("--tls_key_file=", volume_, "/tls.key"),
       absl::StrCat("--tls_client_ca_file=", volume_, "/ca.crt"),
       "--tls_refresh_interval_s=1"});
  ASSERT_NE(server, nullptr);

  // A connection made with A's certificates, and a stream open on it.
  auto old_client = Client(server->address(), "a", "a");
  ASSERT_TRUE(CallPredict(*old_client).ok());
  std::unique_ptr<PredictionStream> stream = old_client->OpenStream();
  v1::PredictRequest first = BracketsRequest();
  first.set_request_id("before");
  ASSERT_TRUE(stream->Send(first));
  auto answer = stream->Receive();
  ASSERT_TRUE(answer.has_value());
  ASSERT_TRUE(answer->result.ok()) << answer->result.status();
  // B's client is refused while the server holds A's certificates.
  EXPECT_EQ(CallPredict(*Client(server->address(), "b", "b")).status().code(),
            absl::StatusCode::kUnavailable);

  Publish("b");
  ASSERT_FALSE(HasFatalFailure());
  // A new connection (a new channel each try) sees B's certificate and CA
  // within a few refresh intervals.
  absl::Status rotated = absl::UnknownError("never tried");
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < end) {
    rotated = CallPredict(*Client(server->address(), "b", "b")).status();
    if (rotated.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(rotated.ok()) << rotated << "\nserver log:\n" << server->Log();
  // A new connection with A's certificates is refused now ...
  EXPECT_EQ(CallPredict(*Client(server->address(), "a", "a")).status().code(),
            absl::StatusCode::kUnavailable);
  // ... so the old channel still answering means its connection was kept.
  for (int i = 0; i < 3; ++i) {
    const auto still = CallPredict(*old_client);
    EXPECT_TRUE(still.ok()) << still.status();
  }
  v1::PredictRequest second = BracketsRequest();
  second.set_request_id("after");
  ASSERT_TRUE(stream->Send(second));
  answer = stream->Receive();
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->request_id, "after");
  EXPECT_TRUE(answer->result.ok()) << answer->result.status();
  stream->CloseSend();
  EXPECT_FALSE(stream->Receive().has_value());
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(server->Stop(), 0);
}

TEST_F(TlsRotationTest, KubernetesSecretUpdateServesTheNewCertificate) {
  RotateAndCheck(Layout::kKubernetesSecret);
}

TEST_F(TlsRotationTest, RenamedFilesServeTheNewCertificate) {
  RotateAndCheck(Layout::kRenamedFiles);
}

// The certificate replaced before its key: gRPC does not check a re-read
// pair, so new handshakes fail from the refresh that reads the new
// certificate with the old key until one reads the new key too. Open
// connections are not affected.
TEST_F(TlsRotationTest, CertificateWithoutItsKeyFailsNewHandshakesUntilBoth) {
  MakeVolume(Layout::kRenamedFiles);
  Publish("a");
  ASSERT_FALSE(HasFatalFailure());
  {
    // Clients that trust both CAs: only a mismatched pair can refuse them.
    std::ifstream a(File("a_ca.pem")), b(File("b_ca.pem"));
    std::ofstream(File("ab_ca.pem")) << a.rdbuf() << b.rdbuf();
  }
  auto server = ServerProcess::Start(
      {kModels, absl::StrCat("--tls_cert_file=", volume_, "/tls.crt"),
       absl::StrCat("--tls_key_file=", volume_, "/tls.key"),
       "--tls_refresh_interval_s=1"});
  ASSERT_NE(server, nullptr);
  auto old_client = Client(server->address(), "ab");
  ASSERT_TRUE(CallPredict(*old_client).ok());

  // Polls (a new channel each try, up to 60 s) until a new connection's
  // call succeeds (`ok`) or fails; returns its last status.
  const auto new_connections_until = [&](bool ok) {
    absl::Status status = absl::UnknownError("never tried");
    const auto end =
        std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < end) {
      status = CallPredict(*Client(server->address(), "ab")).status();
      if (status.ok() == ok) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return status;
  };
  Copy(File("b_server.pem"), volume_ + "/tls.crt.tmp");
  ASSERT_EQ(rename((volume_ + "/tls.crt.tmp").c_str(),
                   (volume_ + "/tls.crt").c_str()),
            0);
  const absl::Status mismatched = new_connections_until(false);
  EXPECT_EQ(mismatched.code(), absl::StatusCode::kUnavailable) << mismatched;
  EXPECT_TRUE(CallPredict(*old_client).ok());

  Copy(File("b_server.key"), volume_ + "/tls.key.tmp");
  ASSERT_EQ(rename((volume_ + "/tls.key.tmp").c_str(),
                   (volume_ + "/tls.key").c_str()),
            0);
  const absl::Status matched = new_connections_until(true);
  EXPECT_TRUE(matched.ok()) << matched << "\nserver log:\n" << server->Log();
  EXPECT_TRUE(CallPredict(*Client(server->address(), "b")).ok());
  EXPECT_TRUE(CallPredict(*old_client).ok());
  EXPECT_EQ(server->Stop(), 0);
}

TEST_F(TlsTest, StartUpRefusesBadFilesNamingTheFlagAndTheFile) {
  {
    std::ofstream(File("garbage.pem")) << "not a certificate\n";
    // A certificate whose base64 is damaged.
    std::ifstream in(File("a_server.pem"));
    std::string pem((std::istreambuf_iterator<char>(in)), {});
    pem[pem.size() / 2] = '!';
    std::ofstream(File("damaged.pem")) << pem;
  }
  const auto encrypted = RunCommand(absl::StrCat(
      "openssl pkey -in ", File("a_server.key"),
      " -aes256 -passout pass:secret -out ", File("encrypted.key")));
  ASSERT_EQ(encrypted.exit_code, 0) << encrypted.out;
  struct Case {
    std::string args;
    std::string expected;  // in the log
  };
  const std::vector<Case> cases = {
      {"--tls_cert_file=missing.pem --tls_key_file=a_server.key",
       "--tls_cert_file 'missing.pem': cannot read it: No such file"},
      {"--tls_cert_file=a_server.pem --tls_key_file=missing.key",
       "--tls_key_file 'missing.key': cannot read it: No such file"},
      {"--tls_cert_file=garbage.pem --tls_key_file=a_server.key",
       "--tls_cert_file 'garbage.pem': no PEM certificate"},
      {"--tls_cert_file=damaged.pem --tls_key_file=a_server.key",
       "--tls_cert_file 'damaged.pem': certificate 1 is not a valid PEM"},
      {"--tls_cert_file=a_server.pem --tls_key_file=garbage.pem",
       "--tls_key_file 'garbage.pem': no PEM private key"},
      {"--tls_cert_file=a_server.pem --tls_key_file=a_server.pem",
       "--tls_key_file 'a_server.pem': no PEM private key"},
      {"--tls_cert_file=a_server.pem --tls_key_file=encrypted.key",
       "--tls_key_file 'encrypted.key': the private key is encrypted"},
      {"--tls_cert_file=a_server.pem --tls_key_file=b_server.key",
       "the private key in --tls_key_file 'b_server.key' does not match the "
       "certificate in --tls_cert_file 'a_server.pem'"},
      {"--tls_cert_file=a_server.pem --tls_key_file=a_server.key "
       "--tls_client_ca_file=garbage.pem",
       "--tls_client_ca_file 'garbage.pem': no PEM certificate"},
      {"--tls_cert_file=a_server.pem --tls_key_file=a_server.key "
       "--tls_client_ca_file=missing.pem",
       "--tls_client_ca_file 'missing.pem': cannot read it"},
      {"--tls_cert_file=a_server.pem --tls_key_file=a_server.key "
       "--tls_client_ca_file=.",
       "--tls_client_ca_file '.': cannot read it: Is a directory"},
      {"--tls_cert_file=a_server.pem", "--tls_cert_file needs --tls_key_file"},
      {"--tls_key_file=a_server.key", "--tls_key_file needs --tls_cert_file"},
      {"--tls_client_ca_file=a_ca.pem",
       "--tls_client_ca_file (mTLS) needs --tls_cert_file and --tls_key_file"},
      {"--tls_cert_file=a_server.pem --tls_key_file=a_server.key "
       "--tls_refresh_interval_s=0",
       "--tls_refresh_interval_s must be at least 1; was 0"},
  };
  for (const Case& c : cases) {
    const auto run = RunServer(c.args);
    EXPECT_EQ(run.exit_code, 1) << c.args << "\n" << run.out;
    EXPECT_THAT(run.out, HasSubstr(c.expected)) << c.args;
    // Nothing was served, in plaintext or otherwise.
    EXPECT_THAT(run.out, Not(HasSubstr("listening on"))) << c.args;
  }
  // The same files, right, do start (the cases fail for their one fault).
  auto good =
      ServerProcess::Start({kModels, "--tls_cert_file=" + File("a_server.pem"),
                            "--tls_key_file=" + File("a_server.key"),
                            "--tls_client_ca_file=" + File("a_ca.pem")});
  ASSERT_NE(good, nullptr);
  EXPECT_EQ(good->Stop(), 0);
}

}  // namespace
}  // namespace biserve
