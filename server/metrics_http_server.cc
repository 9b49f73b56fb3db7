#include "server/metrics_http_server.h"

#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "core/common/log.h"
#include "core/common/mutex.h"
#include "prometheus/metric_family.h"
#include "prometheus/text_serializer.h"

namespace biserve {
namespace {

constexpr char kMetricsContentType[] =
    "text/plain; version=0.0.4; charset=utf-8";
constexpr char kIndexPage[] =
    "<!DOCTYPE html>\n<html><head><title>biserve</title></head>\n"
    "<body><h1>biserve</h1><p><a href=\"/metrics\">Metrics</a></p></body>"
    "</html>\n";
// Fixed texts: nothing of the request is echoed back.
constexpr char kNotFound[] = "404 Not Found: this server serves /metrics\n";
constexpr char kMethodNotAllowed[] =
    "405 Method Not Allowed: use GET or HEAD\n";

// The whole file, or an error naming `what` and `path`.
absl::StatusOr<std::string> ReadFile(absl::string_view what,
                                     const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " '", path, "': cannot be read"));
  }
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " '", path, "': read error"));
  }
  return text.str();
}

// What identifies one version of a file: a rotation (a rename over it, or
// Kubernetes swapping the ..data link of a mounted Secret) changes at least
// one of these.
struct FileStamp {
  dev_t device = 0;
  ino_t inode = 0;
  off_t size = -1;
  int64_t mtime_ns = 0;

  static FileStamp Of(const std::string& path) {
    struct stat st;
    if (stat(path.c_str(), &st) != 0) return {};
    return {st.st_dev, st.st_ino, st.st_size,
            int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec};
  }
  bool operator==(const FileStamp&) const = default;
};

// One loaded certificate and key pair.
class Credentials {
 public:
  // The pair in `cert_pem` and `key_pem`, checked (PEM, key matches the
  // certificate) by GnuTLS.
  static absl::StatusOr<std::unique_ptr<Credentials>> Load(
      const std::string& cert_pem, const std::string& key_pem) {
    gnutls_certificate_credentials_t credentials;
    if (gnutls_certificate_allocate_credentials(&credentials) !=
        GNUTLS_E_SUCCESS) {
      return absl::ResourceExhaustedError("cannot allocate TLS credentials");
    }
    auto loaded = std::unique_ptr<Credentials>(new Credentials(credentials));
    const gnutls_datum_t cert{
        reinterpret_cast<unsigned char*>(const_cast<char*>(cert_pem.data())),
        static_cast<unsigned>(cert_pem.size())};
    const gnutls_datum_t key{
        reinterpret_cast<unsigned char*>(const_cast<char*>(key_pem.data())),
        static_cast<unsigned>(key_pem.size())};
    const int rc = gnutls_certificate_set_x509_key_mem2(
        credentials, &cert, &key, GNUTLS_X509_FMT_PEM, nullptr, 0);
    if (rc < 0) {
      absl::string_view reason = gnutls_strerror(rc);
      absl::ConsumeSuffix(&reason, ".");
      return absl::InvalidArgumentError(reason);
    }
    return loaded;
  }

  ~Credentials() { gnutls_certificate_free_credentials(credentials_); }
  Credentials(const Credentials&) = delete;
  Credentials& operator=(const Credentials&) = delete;

  gnutls_certificate_credentials_t get() const { return credentials_; }

 private:
  explicit Credentials(gnutls_certificate_credentials_t credentials)
      : credentials_(credentials) {}
  const gnutls_certificate_credentials_t credentials_;
};

// Reads the pair from the files; errors name the file.
absl::StatusOr<std::unique_ptr<Credentials>> LoadFiles(
    const std::string& cert_file, const std::string& key_file,
    std::string* cert_pem, std::string* key_pem) {
  absl::StatusOr<std::string> cert = ReadFile("tls_cert_file", cert_file);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadFile("tls_key_file", key_file);
  if (!key.ok()) return key.status();
  absl::StatusOr<std::unique_ptr<Credentials>> loaded =
      Credentials::Load(*cert, *key);
  if (!loaded.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tls_cert_file '", cert_file, "' and tls_key_file '",
                     key_file, "': ", loaded.status().message(),
                     " (expected a PEM certificate chain and its unencrypted "
                     "PEM private key)"));
  }
  *cert_pem = *std::move(cert);
  *key_pem = *std::move(key);
  return loaded;
}

MHD_Result Queue(MHD_Connection* connection, unsigned status,
                 absl::string_view body, const char* content_type,
                 bool allow_header) {
  MHD_Response* response = MHD_create_response_from_buffer(
      body.size(), const_cast<char*>(body.data()), MHD_RESPMEM_MUST_COPY);
  if (response == nullptr) return MHD_NO;  // closes the connection
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
  MHD_add_response_header(response, "X-Content-Type-Options", "nosniff");
  if (allow_header) {
    MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
  }
  const MHD_Result queued = MHD_queue_response(connection, status, response);
  MHD_destroy_response(response);
  return queued;
}

}  // namespace

class MetricsHttpServer::Impl {
 public:
  Impl(Options options, std::unique_ptr<Credentials> credentials,
       std::string cert_pem, std::string key_pem)
      : options_(std::move(options)),
        cert_pem_(std::move(cert_pem)),
        key_pem_(std::move(key_pem)) {
    if (credentials != nullptr) {
      cert_stamp_ = FileStamp::Of(options_.tls_cert_file);
      key_stamp_ = FileStamp::Of(options_.tls_key_file);
      current_ = credentials.get();
      generations_.push_back(std::move(credentials));
    }
  }

  const Options& options() const { return options_; }
  // The first pair's PEM text, which libmicrohttpd reads while it starts.
  const char* cert_pem() const { return cert_pem_.c_str(); }
  const char* key_pem() const { return key_pem_.c_str(); }

  // Startup errors from libmicrohttpd's log, for Create's message.
  std::string TakeStartupLog() {
    MutexLock lock(&mu_);
    started_ = true;
    return std::move(startup_log_);
  }

  static void LogCallback(void* cls, const char* format, va_list args) {
    auto* self = static_cast<Impl*>(cls);
    char message[512];
    vsnprintf(message, sizeof(message), format, args);
    MutexLock lock(&self->mu_);
    // After start-up libmicrohttpd logs every malformed or aborted request;
    // a client must not be able to fill the server's log, so only the
    // reasons a start failed are kept.
    if (!self->started_) absl::StrAppend(&self->startup_log_, message);
  }

  static MHD_Result HandleRequest(void* cls, MHD_Connection* connection,
                                  const char* url, const char* method,
                                  const char* /*version*/,
                                  const char* /*upload_data*/,
                                  size_t* /*upload_data_size*/,
                                  void** /*request_state*/) {
    // Answered at the first call, before any body is read: a request body
    // is never wanted, and libmicrohttpd then closes the connection rather
    // than read it.
    const absl::string_view path(url);
    const absl::string_view verb(method);
    const bool get_or_head =
        verb == MHD_HTTP_METHOD_GET || verb == MHD_HTTP_METHOD_HEAD;
    if (path == "/metrics") {
      if (!get_or_head) {
        return Queue(connection, MHD_HTTP_METHOD_NOT_ALLOWED, kMethodNotAllowed,
                     "text/plain; charset=utf-8", true);
      }
      return Queue(connection, MHD_HTTP_OK,
                   static_cast<Impl*>(cls)->Serialize(), kMetricsContentType,
                   false);
    }
    if (path == "/") {
      if (!get_or_head) {
        return Queue(connection, MHD_HTTP_METHOD_NOT_ALLOWED, kMethodNotAllowed,
                     "text/plain; charset=utf-8", true);
      }
      return Queue(connection, MHD_HTTP_OK, kIndexPage,
                   "text/html; charset=utf-8", false);
    }
    return Queue(connection, MHD_HTTP_NOT_FOUND, kNotFound,
                 "text/plain; charset=utf-8", false);
  }

  // Leaves the request target as sent. libmicrohttpd would percent-decode
  // it in place, and "/metrics%00junk" would then reach the handler as the
  // C string "/metrics"; undecoded, only the exact paths match.
  static size_t KeepEscaped(void* /*cls*/, MHD_Connection* /*connection*/,
                            char* text) {
    return strlen(text);
  }

  // Gives each new TLS connection the newest loaded pair; runs before its
  // handshake.
  static void NotifyConnection(void* cls, MHD_Connection* connection,
                               void** /*socket_context*/,
                               MHD_ConnectionNotificationCode code) {
    if (code != MHD_CONNECTION_NOTIFY_STARTED) return;
    const MHD_ConnectionInfo* info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (info == nullptr || info->tls_session == nullptr) return;
    gnutls_credentials_set(static_cast<gnutls_session_t>(info->tls_session),
                           GNUTLS_CRD_CERTIFICATE,
                           static_cast<Impl*>(cls)->CurrentCredentials());
  }

 private:
  std::string Serialize() const {
    std::vector<prometheus::MetricFamily> families;
    for (const auto& collectable : options_.collectables) {
      std::vector<prometheus::MetricFamily> collected = collectable->Collect();
      families.insert(families.end(),
                      std::make_move_iterator(collected.begin()),
                      std::make_move_iterator(collected.end()));
    }
    return prometheus::TextSerializer().Serialize(families);
  }

  // The pair for a new connection: re-read first if either file changed.
  gnutls_certificate_credentials_t CurrentCredentials() {
    const FileStamp cert_stamp = FileStamp::Of(options_.tls_cert_file);
    const FileStamp key_stamp = FileStamp::Of(options_.tls_key_file);
    MutexLock lock(&mu_);
    if (cert_stamp == cert_stamp_ && key_stamp == key_stamp_) {
      return current_->get();
    }
    cert_stamp_ = cert_stamp;
    key_stamp_ = key_stamp;
    std::string cert_pem, key_pem;
    absl::StatusOr<std::unique_ptr<Credentials>> loaded = LoadFiles(
        options_.tls_cert_file, options_.tls_key_file, &cert_pem, &key_pem);
    if (!loaded.ok()) {
      // Often the moment between a rotation's two writes: the next change
      // is tried again.
      LogWarning(absl::StrCat("metrics TLS: keeping the previous certificate: ",
                              loaded.status().message()));
      return current_->get();
    }
    LogInfo(absl::StrCat("metrics TLS: serving the new certificate in ",
                         options_.tls_cert_file));
    current_ = loaded->get();
    generations_.push_back(*std::move(loaded));
    return current_->get();
  }

  const Options options_;
  const std::string cert_pem_;
  const std::string key_pem_;

  // Mutex (core/common/mutex.h), not absl::Mutex: ThreadSanitizer sees
  // pthread locks, and Debian's Abseil is not built for it.
  mutable Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  std::string startup_log_ ABSL_GUARDED_BY(mu_);
  FileStamp cert_stamp_ ABSL_GUARDED_BY(mu_);
  FileStamp key_stamp_ ABSL_GUARDED_BY(mu_);
  // Every pair loaded so far: a TLS session keeps using the pair it was
  // given, so none is freed before the daemon (and every session) stops.
  // One per rotation of the files.
  std::vector<std::unique_ptr<Credentials>> generations_ ABSL_GUARDED_BY(mu_);
  Credentials* current_ ABSL_GUARDED_BY(mu_) = nullptr;
};

namespace {

// Create's checks of `options`, before anything is read or bound.
absl::Status ValidateOptions(const MetricsHttpServer::Options& options) {
  if (options.port < 0 || options.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("port must be in [0, 65535]; was ", options.port));
  }
  if (options.num_threads < 1 || options.idle_timeout_s < 1 ||
      options.max_connections < 1 || options.max_request_header_bytes < 1024) {
    return absl::InvalidArgumentError(absl::StrCat(
        "num_threads, idle_timeout_s and max_connections must be at least 1 "
        "and max_request_header_bytes at least 1024; were ",
        options.num_threads, ", ", options.idle_timeout_s, ", ",
        options.max_connections, ", ", options.max_request_header_bytes));
  }
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "tls_cert_file and tls_key_file go together: give both or neither");
  }
  return absl::OkStatus();
}

// The pair of the TLS files, with their PEM text (which libmicrohttpd
// reads while it starts) in `cert_pem` and `key_pem`.
absl::StatusOr<std::unique_ptr<Credentials>> LoadFirstCredentials(
    const MetricsHttpServer::Options& options, std::string* cert_pem,
    std::string* key_pem) {
  if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
    return absl::FailedPreconditionError(
        "this libmicrohttpd was built without TLS");
  }
  return LoadFiles(options.tls_cert_file, options.tls_key_file, cert_pem,
                   key_pem);
}

// `host` and `port` as a socket address (a name resolved once, its first
// address).
absl::StatusOr<sockaddr_storage> ResolveAddress(const std::string& host,
                                                int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* addresses = nullptr;
  const std::string port_text = absl::StrCat(port);
  if (const int rc =
          getaddrinfo(host.c_str(), port_text.c_str(), &hints, &addresses);
      rc != 0 || addresses == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "host '", host, "': not an address (", gai_strerror(rc), ")"));
  }
  sockaddr_storage address{};
  std::memcpy(&address, addresses->ai_addr, addresses->ai_addrlen);
  freeaddrinfo(addresses);
  return address;
}

// libmicrohttpd's options for `impl`'s server on `address` (both must
// outlive the daemon's start), ended by MHD_OPTION_END.
std::vector<MHD_OptionItem> DaemonOptions(MetricsHttpServer::Impl& impl,
                                          sockaddr_storage* address, bool tls) {
  using Impl = MetricsHttpServer::Impl;
  const MetricsHttpServer::Options& o = impl.options();
  std::vector<MHD_OptionItem> items = {
      // First, so that libmicrohttpd prints nothing itself.
      {MHD_OPTION_EXTERNAL_LOGGER,
       reinterpret_cast<intptr_t>(&Impl::LogCallback), &impl},
      {MHD_OPTION_SOCK_ADDR, 0, address},
      {MHD_OPTION_UNESCAPE_CALLBACK,
       reinterpret_cast<intptr_t>(&Impl::KeepEscaped), nullptr},
      {MHD_OPTION_CONNECTION_TIMEOUT, static_cast<intptr_t>(o.idle_timeout_s),
       nullptr},
      {MHD_OPTION_CONNECTION_LIMIT, static_cast<intptr_t>(o.max_connections),
       nullptr},
      {MHD_OPTION_CONNECTION_MEMORY_LIMIT,
       static_cast<intptr_t>(o.max_request_header_bytes), nullptr},
      // The stack stays the system default (MHD_OPTION_THREAD_STACK_SIZE
      // unset): a small fixed stack is what broke civetweb (see the header).
  };
  if (o.num_threads > 1) {
    items.push_back({MHD_OPTION_THREAD_POOL_SIZE,
                     static_cast<intptr_t>(o.num_threads), nullptr});
  }
  if (tls) {
    items.push_back(
        {MHD_OPTION_HTTPS_MEM_CERT, 0, const_cast<char*>(impl.cert_pem())});
    items.push_back(
        {MHD_OPTION_HTTPS_MEM_KEY, 0, const_cast<char*>(impl.key_pem())});
    items.push_back({MHD_OPTION_NOTIFY_CONNECTION,
                     reinterpret_cast<intptr_t>(&Impl::NotifyConnection),
                     &impl});
  }
  items.push_back({MHD_OPTION_END, 0, nullptr});
  return items;
}

// UNAVAILABLE for a daemon that did not start on `where`, with the reasons
// libmicrohttpd logged.
absl::Status StartError(const std::string& where, std::string startup_log) {
  while (!startup_log.empty() && startup_log.back() == '\n') {
    startup_log.pop_back();
  }
  return absl::UnavailableError(absl::StrCat(
      "cannot listen on ", where, ": ",
      startup_log.empty() ? "libmicrohttpd did not start" : startup_log));
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Create(
    Options options) {
  if (absl::Status s = ValidateOptions(options); !s.ok()) return s;
  const bool tls = !options.tls_cert_file.empty();
  std::unique_ptr<Credentials> credentials;
  std::string cert_pem, key_pem;
  if (tls) {
    absl::StatusOr<std::unique_ptr<Credentials>> loaded =
        LoadFirstCredentials(options, &cert_pem, &key_pem);
    if (!loaded.ok()) return loaded.status();
    credentials = *std::move(loaded);
  }
  absl::StatusOr<sockaddr_storage> address =
      ResolveAddress(options.host, options.port);
  if (!address.ok()) return address.status();

  const std::string where = absl::StrCat(options.host, ":", options.port);
  auto impl = std::make_unique<Impl>(std::move(options), std::move(credentials),
                                     std::move(cert_pem), std::move(key_pem));
  unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
  if (address->ss_family == AF_INET6) flags |= MHD_USE_IPv6;
  if (tls) flags |= MHD_USE_TLS;
  std::vector<MHD_OptionItem> items = DaemonOptions(*impl, &*address, tls);
  // (The port argument only names the port in libmicrohttpd's messages:
  // the address above has it.)
  const int requested_port = impl->options().port;
  MHD_Daemon* daemon =
      MHD_start_daemon(flags, static_cast<uint16_t>(requested_port), nullptr,
                       nullptr, &Impl::HandleRequest, impl.get(),
                       MHD_OPTION_ARRAY, items.data(), MHD_OPTION_END);
  const std::string startup_log = impl->TakeStartupLog();
  if (daemon == nullptr) return StartError(where, startup_log);
  const MHD_DaemonInfo* bound =
      MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
  const int port = bound != nullptr ? bound->port : requested_port;
  return std::unique_ptr<MetricsHttpServer>(
      new MetricsHttpServer(std::move(impl), daemon, port, tls));
}

MetricsHttpServer::MetricsHttpServer(std::unique_ptr<Impl> impl,
                                     MHD_Daemon* daemon, int port, bool tls)
    : impl_(std::move(impl)), daemon_(daemon), port_(port), tls_(tls) {}

MetricsHttpServer::~MetricsHttpServer() { MHD_stop_daemon(daemon_); }

}  // namespace biserve
