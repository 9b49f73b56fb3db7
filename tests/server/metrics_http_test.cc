// The metrics port of a running biserve_server against whatever an HTTP
// client, a careless user or an attacker sends it: a real server process,
// curl for well-formed requests and raw sockets for malformed ones. After
// every case the server is still running and GET /metrics still works.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/command.h"
#include "tests/server/server_process.h"

namespace biserve {
namespace {

using ::biserve::testing::RunCommand;
using ::biserve::testing::ServerProcess;
using ::biserve::testing::TestPath;
using ::testing::AnyOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// A connected loopback socket whose reads give up after 30 s (a server that
// never answers fails the test instead of hanging it); -1 on failure.
int Connect(int port, const char* ip = "127.0.0.1") {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  timeval timeout{.tv_sec = 30, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, ip, &address.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) !=
      0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Everything the server sends until it closes the connection.
std::string ReadAll(int fd) {
  std::string response;
  char buffer[65536];
  ssize_t n;
  while ((n = read(fd, buffer, sizeof(buffer))) > 0) response.append(buffer, n);
  return response;
}

// Sends `request` as is, then reads the answer until the server closes.
// With `half_close`, the sending side is shut first, as a client that has
// nothing more to say.
std::string Exchange(int port, const std::string& request,
                     bool half_close = false) {
  const int fd = Connect(port);
  if (fd < 0) return "connect failed";
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n =
        send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may answer and close before it all
    sent += n;
  }
  if (half_close) shutdown(fd, SHUT_WR);
  std::string response = ReadAll(fd);
  close(fd);
  return response;
}

// The status code of a raw HTTP response; 0 if there is none (closed
// without an answer).
int StatusOf(const std::string& response) {
  int code = 0;
  if (absl::StartsWith(response, "HTTP/1.") && response.size() >= 12) {
    (void)absl::SimpleAtoi(response.substr(9, 3), &code);
  }
  return code;
}

// curl's status code for `args` (0: no HTTP answer).
int CurlCode(const std::string& args) {
  const auto result = RunCommand(absl::StrCat(
      "curl -s -o /dev/null --max-time 30 -w '%{http_code}' ", args));
  int code = 0;
  (void)absl::SimpleAtoi(result.out, &code);
  return code;
}

class MetricsHttpTest : public ::testing::Test {
 protected:
  void Start(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"--model_repository=" BISERVE_SOURCE_DIR
                                     "/models"};
    args.insert(args.end(), extra.begin(), extra.end());
    server_ = ServerProcess::Start(args);
    ASSERT_NE(server_, nullptr);
    port_ = server_->metrics_port();
    ASSERT_GT(port_, 0) << server_->Log();
  }
  void TearDown() override {
    if (server_) {
      EXPECT_EQ(server_->Stop(), 0) << server_->Log();
    }
  }

  // The server is running and serves biserve's metrics over plain HTTP.
  void ExpectServing(const std::string& after) {
    ASSERT_FALSE(server_->HasExited())
        << "died after " << after << "; its log:\n"
        << server_->Log();
    const std::string response =
        Exchange(port_,
                 "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 "Connection: close\r\n\r\n");
    ASSERT_EQ(StatusOf(response), 200) << "after " << after << ":\n"
                                       << response.substr(0, 300);
    ASSERT_THAT(response, HasSubstr("biserve_build_info"));
  }

  std::unique_ptr<ServerProcess> server_;
  int port_ = 0;
};

TEST_F(MetricsHttpTest, AnswersEveryMethodOnEveryPathAsDesigned) {
  ASSERT_NO_FATAL_FAILURE(Start());
  const std::string base = absl::StrCat("http://127.0.0.1:", port_);
  struct Case {
    std::string path;
    int get_or_head;  // the code for GET and HEAD
    int other;        // for every other method
  };
  const std::vector<Case> cases = {
      {"/metrics", 200, 405},
      {"/metrics?x=1", 200, 405},
      {"/", 200, 405},
      {"/favicon.ico", 404, 404},
      {"/metrics/", 404, 404},
      {"/index.html", 404, 404},
      {"/%00%ff%2e%2e%2f%zz%", 404, 404},
      {"/metrics%00", 404, 404},
  };
  for (const Case& c : cases) {
    for (const std::string method : {"GET", "HEAD", "POST", "PUT", "DELETE",
                                     "OPTIONS", "TRACE", "PATCH", "BREW"}) {
      const bool get_or_head = method == "GET" || method == "HEAD";
      const std::string request =
          method == "HEAD" ? "--head" : absl::StrCat("-X ", method);
      SCOPED_TRACE(absl::StrCat(method, " ", c.path));
      EXPECT_EQ(CurlCode(absl::StrCat(request, " '", base, c.path, "'")),
                get_or_head ? c.get_or_head : c.other);
    }
    ASSERT_NO_FATAL_FAILURE(ExpectServing(c.path));
  }
  // curl would normalise these away.
  EXPECT_EQ(
      CurlCode(absl::StrCat("--path-as-is '", base, "/../../etc/passwd'")),
      404);
  EXPECT_EQ(CurlCode(absl::StrCat("--path-as-is '", base, "/metrics/../'")),
            404);
  ASSERT_NO_FATAL_FAILURE(ExpectServing("dot-dot paths"));
}

TEST_F(MetricsHttpTest, MetricsIndexAndErrorsHaveTheirHeadersAndBodies) {
  ASSERT_NO_FATAL_FAILURE(Start());
  const std::string get = Exchange(
      port_, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(StatusOf(get), 200);
  EXPECT_THAT(get, HasSubstr("\r\nContent-Type: text/plain; version=0.0.4"));
  EXPECT_THAT(get, HasSubstr("biserve_model_loaded"));
  // Answered, then closed (keep-alive is not offered).
  EXPECT_THAT(get, HasSubstr("\r\nConnection: close\r\n"));
  EXPECT_THAT(get, HasSubstr("process_resident_memory_bytes"));
  // Only biserve's registry and the process collector: none of
  // prometheus-cpp's exposer_* metrics.
  EXPECT_THAT(get, Not(HasSubstr("exposer_")));

  // HEAD: the same headers, no body.
  const std::string head = Exchange(
      port_, "HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(StatusOf(head), 200);
  EXPECT_THAT(head, HasSubstr("\r\nContent-Type: text/plain; version=0.0.4"));
  EXPECT_TRUE(absl::EndsWith(head, "\r\n\r\n")) << head;

  const std::string index = Exchange(port_, "GET / HTTP/1.0\r\n\r\n");
  EXPECT_EQ(StatusOf(index), 200);
  EXPECT_THAT(index, HasSubstr("Content-Type: text/html"));
  EXPECT_THAT(index, HasSubstr("<a href=\"/metrics\">"));

  const std::string not_found =
      Exchange(port_, "GET /<script>alert(1)</script> HTTP/1.0\r\n\r\n");
  EXPECT_EQ(StatusOf(not_found), 404);
  EXPECT_THAT(not_found, HasSubstr("Content-Type: text/plain"));
  EXPECT_THAT(not_found, Not(HasSubstr("script")));  // never echoed

  const std::string post = Exchange(
      port_,
      "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
  EXPECT_EQ(StatusOf(post), 405);
  EXPECT_THAT(post, HasSubstr("\r\nAllow: GET, HEAD\r\n"));
  ASSERT_NO_FATAL_FAILURE(ExpectServing("the header checks"));
}

TEST_F(MetricsHttpTest, SurvivesMalformedAndHostileRequests) {
  ASSERT_NO_FATAL_FAILURE(Start());
  const std::string long_path(100 << 10, 'a');
  const std::string huge_header(100 << 10, 'h');
  std::string many_headers;
  for (int i = 0; i < 2000; ++i)
    absl::StrAppend(&many_headers, "X-", i, ": v\r\n");
  std::string ten_mb(10 << 20, 'b');
  static constexpr char kNulInHeader[] =
      "GET /metrics HTTP/1.1\r\nHost: x\0y\r\n\r\n";
  struct Case {
    std::string name;
    std::string request;
    int code;  // 0: the connection is closed without an answer
    bool half_close = false;
  };
  const std::vector<Case> cases = {
      {"very long path", "GET /" + long_path + " HTTP/1.1\r\nHost: x\r\n\r\n",
       414},
      {"huge header",
       "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + huge_header + "\r\n\r\n",
       431},
      {"many headers",
       "GET /metrics HTTP/1.1\r\nHost: x\r\n" + many_headers + "\r\n", 431},
      {"non-numeric Content-Length",
       "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400},
      {"negative Content-Length",
       "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400},
      {"overflowing Content-Length",
       "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: "
       "999999999999999999999999\r\n\r\n",
       413},
      {"Content-Length and chunked together",
       "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
       "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       405},
      {"chunked body",
       "POST /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
       "Connection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
       405},
      {"broken chunked body",
       "PUT /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
       "zz\r\nhello\r\n",
       404, true},
      {"Expect: 100-continue",
       "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n"
       "Expect: 100-continue\r\n\r\n",
       405},
      {"10 MB body",
       "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: " +
           std::to_string(ten_mb.size()) + "\r\n\r\n" + ten_mb,
       405},
      {"garbage request line", "GARBAGE\r\n\r\n", 0},
      {"binary junk", std::string("\x00\xff\x01\r\n\x7f\r\n\r\n", 10), 0},
      {"method only", "GET\r\n\r\n", 0},
      {"HTTP/0.9 request", "GET /metrics\r\n\r\n", 400, true},
      {"unknown HTTP version", "GET /metrics HTTP/9.9\r\nHost: x\r\n\r\n", 505},
      {"HTTP/2 preface to HTTP/1", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505},
      {"CONNECT", "CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n",
       404},
      {"absolute-form target",
       "GET http://127.0.0.1/metrics HTTP/1.1\r\nHost: x\r\n\r\n", 404},
      {"header without colon", "GET /metrics HTTP/1.1\r\nHost x\r\n\r\n", 400},
      {"bare LF line ends", "GET /metrics HTTP/1.1\nHost: x\n\n", 200},
      {"NUL in header", std::string(kNulInHeader, sizeof(kNulInHeader) - 1),
       200},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string response = Exchange(port_, c.request, c.half_close);
    EXPECT_EQ(StatusOf(response), c.code) << response.substr(0, 300);
    ASSERT_NO_FATAL_FAILURE(ExpectServing(c.name));
  }
}

TEST_F(MetricsHttpTest, SurvivesAbandonedAndTlsConnections) {
  ASSERT_NO_FATAL_FAILURE(Start());
  // A connection closed mid-request, after part of the request line, after
  // part of the headers, and mid-body.
  for (const std::string partial :
       {"GE", "GET /metrics HTTP/1.1\r\nHo",
        "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab"}) {
    const int fd = Connect(port_);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(send(fd, partial.data(), partial.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(partial.size()));
    close(fd);
    ASSERT_NO_FATAL_FAILURE(ExpectServing("closed mid-request: " + partial));
  }
  // Slowloris: partial requests left open do not stop others being served.
  std::vector<int> slow;
  for (int i = 0; i < 8; ++i) {
    const int fd = Connect(port_);
    ASSERT_GE(fd, 0);
    const std::string start = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-a: ";
    ASSERT_GT(send(fd, start.data(), start.size(), MSG_NOSIGNAL), 0);
    slow.push_back(fd);
  }
  ASSERT_NO_FATAL_FAILURE(ExpectServing("8 partial requests held open"));
  for (int fd : slow) close(fd);
  ASSERT_NO_FATAL_FAILURE(ExpectServing("the partial requests closed"));

  // A TLS ClientHello to the plain port (curl speaking HTTPS to it).
  EXPECT_EQ(CurlCode(absl::StrCat("-k https://127.0.0.1:", port_, "/metrics")),
            0);
  ASSERT_NO_FATAL_FAILURE(ExpectServing("a TLS handshake on the plain port"));

  // Many connections at once, beyond the thread count.
  std::vector<std::thread> clients;
  std::vector<int> codes(16);
  for (int i = 0; i < 16; ++i) {
    clients.emplace_back([&, i] {
      codes[i] = StatusOf(Exchange(port_, "GET /metrics HTTP/1.0\r\n\r\n"));
    });
  }
  for (std::thread& t : clients) t.join();
  for (int code : codes) EXPECT_EQ(code, 200);
  ASSERT_NO_FATAL_FAILURE(ExpectServing("16 concurrent scrapes"));
}

TEST_F(MetricsHttpTest, MetricsHostBindsWhereTold) {
  // gRPC on 127.0.0.1 (ServerProcess), metrics on 127.0.0.2 only.
  server_ =
      ServerProcess::Start({"--model_repository=" BISERVE_SOURCE_DIR "/models",
                            "--metrics_host=127.0.0.2"});
  ASSERT_NE(server_, nullptr);
  const std::string log = server_->Log();
  const std::string marker = "metrics on 127.0.0.2:";
  const size_t at = log.find(marker);
  ASSERT_NE(at, std::string::npos) << log;
  const size_t from = at + marker.size();
  ASSERT_TRUE(
      absl::SimpleAtoi(log.substr(from, log.find('/', from) - from), &port_))
      << log;
  EXPECT_EQ(CurlCode(absl::StrCat("http://127.0.0.2:", port_, "/metrics")),
            200);
  const int elsewhere = Connect(port_, "127.0.0.1");
  EXPECT_LT(elsewhere, 0) << "the metrics port also listens on 127.0.0.1";
  if (elsewhere >= 0) close(elsewhere);
}

// openssl commands making a self-signed CA named `name` and a server
// certificate it signs for 127.0.0.1, in `dir`: name_ca.pem, name.pem,
// name.key.
std::string MakeCertsCommand(const std::string& dir, const std::string& name) {
  const std::string p = dir + "/" + name;
  return absl::StrCat(
      "set -e; openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
      "-nodes -days 2 -subj '/CN=",
      name, " CA' -keyout ", p, "_ca.key -out ", p,
      "_ca.pem; openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
      "-nodes -subj /CN=127.0.0.1 -keyout ",
      p, ".key -out ", p, ".csr; printf 'subjectAltName=IP:127.0.0.1\\n' > ", p,
      ".ext; openssl x509 -req -in ", p, ".csr -CA ", p, "_ca.pem -CAkey ", p,
      "_ca.key -CAcreateserial -days 2 -extfile ", p, ".ext -out ", p, ".pem");
}

TEST_F(MetricsHttpTest, ServesHttpsAndReloadsTheCertificate) {
  const std::string dir = TestPath("certs");
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  for (const std::string name : {"first", "second"}) {
    const auto made = RunCommand(MakeCertsCommand(dir, name));
    ASSERT_EQ(made.exit_code, 0) << made.out;
  }
  // The files the server reads; a rotation renames new ones over them.
  std::filesystem::copy_file(dir + "/first.pem", dir + "/tls.pem");
  std::filesystem::copy_file(dir + "/first.key", dir + "/tls.key");
  ASSERT_NO_FATAL_FAILURE(
      Start({"--metrics_tls_cert_file=" + dir + "/tls.pem",
             "--metrics_tls_key_file=" + dir + "/tls.key"}));
  EXPECT_THAT(server_->Log(), HasSubstr("/metrics (HTTPS)"));
  const std::string url = absl::StrCat("https://127.0.0.1:", port_, "/metrics");
  const auto scraped = RunCommand(absl::StrCat(
      "curl -sS --max-time 30 --cacert ", dir, "/first_ca.pem ", url));
  EXPECT_EQ(scraped.exit_code, 0) << scraped.out;
  EXPECT_THAT(scraped.out, HasSubstr("biserve_build_info"));
  EXPECT_EQ(CurlCode(absl::StrCat("--cacert ", dir, "/first_ca.pem https://",
                                  "127.0.0.1:", port_, "/nope")),
            404);

  // HTTPS only: plain HTTP gets no answer, and does not hurt the server.
  EXPECT_EQ(CurlCode(absl::StrCat("http://127.0.0.1:", port_, "/metrics")), 0);
  EXPECT_EQ(StatusOf(Exchange(port_, "GET /metrics HTTP/1.0\r\n\r\n")), 0);
  ASSERT_FALSE(server_->HasExited()) << server_->Log();
  EXPECT_EQ(CurlCode(absl::StrCat("--cacert ", dir, "/first_ca.pem ", url)),
            200);

  // Rotation: the second CA's pair renamed over the files; new connections
  // get it without a restart.
  std::filesystem::copy_file(dir + "/second.key", dir + "/tls.key.new");
  std::filesystem::copy_file(dir + "/second.pem", dir + "/tls.pem.new");
  std::filesystem::rename(dir + "/tls.key.new", dir + "/tls.key");
  std::filesystem::rename(dir + "/tls.pem.new", dir + "/tls.pem");
  EXPECT_EQ(CurlCode(absl::StrCat("--cacert ", dir, "/second_ca.pem ", url)),
            200)
      << server_->Log();
  EXPECT_EQ(CurlCode(absl::StrCat("--cacert ", dir, "/first_ca.pem ", url)), 0);

  // A broken replacement is refused and the last good pair stays.
  std::filesystem::copy_file(dir + "/first.key", dir + "/tls.key.new");
  std::filesystem::rename(dir + "/tls.key.new", dir + "/tls.key");  // mismatch
  EXPECT_EQ(CurlCode(absl::StrCat("--cacert ", dir, "/second_ca.pem ", url)),
            200);
  EXPECT_THAT(server_->Log(), HasSubstr("keeping the previous certificate"));
}

TEST_F(MetricsHttpTest, UnusableTlsFilesStopStartUpWithAMessage) {
  const std::string dir = TestPath("bad_certs");
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  for (const std::string name : {"a", "b"}) {
    const auto made = RunCommand(MakeCertsCommand(dir, name));
    ASSERT_EQ(made.exit_code, 0) << made.out;
  }
  const std::string server =
      BISERVE_BIN_DIR "/biserve_server --model_repository=" BISERVE_SOURCE_DIR
                      "/models --host=127.0.0.1 --port=0 --metrics_port=0 ";
  struct Case {
    std::string flags;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"--metrics_tls_cert_file=" + dir + "/a.pem",
       "tls_cert_file and tls_key_file go together"},
      {"--metrics_tls_cert_file=" + dir +
           "/a.pem --metrics_tls_key_file=" + dir + "/missing.key",
       "tls_key_file '" + dir + "/missing.key': cannot be read"},
      {"--metrics_tls_cert_file=" + dir +
           "/a.pem --metrics_tls_key_file=" + dir + "/b.key",
       "do not match"},
      {"--metrics_tls_cert_file=" + dir +
           "/a.key --metrics_tls_key_file=" + dir + "/a.key",
       "expected a PEM certificate chain"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.flags);
    const auto result = RunCommand(server + c.flags);
    EXPECT_EQ(result.exit_code, 1) << result.out;
    EXPECT_THAT(result.out, HasSubstr(c.message));
  }
}

}  // namespace
}  // namespace biserve
