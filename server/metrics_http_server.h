// MetricsHttpServer: the Prometheus /metrics endpoint, on GNU libmicrohttpd.
//
// What it answers, whatever it is sent:
//   GET or HEAD /metrics    200, the text exposition format 0.0.4 of every
//                           collectable it was given (a query string is
//                           ignored)
//   GET or HEAD /           200, a small HTML page linking /metrics
//   any other method on /metrics or /
//                           405 with "Allow: GET, HEAD"
//   any other path          404 with a short text body (never echoing the
//                           request)
//   malformed requests      libmicrohttpd's own 4xx answers (400, 413, 414,
//                           431, 505) or a closed connection
// Request bodies are never read: a request that sends one is answered and
// its connection closed.
//
// Why not prometheus-cpp's Exposer (Debian's libcivetweb 1.15 beneath it):
// civetweb starts its worker threads with a fixed 100 KiB stack (compiled
// in, USE_STACK_SIZE), and glibc carves every thread's static TLS out of the
// requested stack; OpenBLAS alone has 60 KiB of static TLS, so civetweb's
// workers in biserve_server had about 36 KiB left, and its error-page path
// (two 8 KiB buffers deep) overflowed it: any 404 was a SIGSEGV. Its TLS is
// unusable too: built for the OpenSSL 1.1 API, it calls
// SSL_get_peer_certificate on every HTTPS connection, a symbol libssl3 no
// longer exports (a NULL call). libmicrohttpd's threads get the system's
// default stack, and its TLS is GnuTLS.
//
// TLS: with tls_cert_file and tls_key_file the port speaks HTTPS only. The
// files are checked at Create (an unreadable or mismatched pair is an
// error) and looked at again (stat) at every handshake: when either has
// changed, the new pair is read and served to new connections; open
// connections keep theirs. A new pair that does not load is logged once and
// the previous one stays.
//
// Thread-safety: Create starts the listener threads; the collectables are
// collected on them, concurrently, so they must be thread-safe (a
// prometheus::Registry and ProcessCollector are). The destructor stops the
// threads, closing every connection.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "prometheus/collectable.h"

struct MHD_Daemon;

namespace biserve {

class MetricsHttpServer {
 public:
  struct Options {
    // Address to listen on: an IPv4 or IPv6 address, or a host name
    // (resolved once, first address). 0.0.0.0: every IPv4 interface.
    std::string host = "0.0.0.0";
    // 0 picks a free port (port() names it).
    int port = 0;
    // Threads answering requests (each serves many connections).
    int num_threads = 2;
    // A connection idle (nothing received or sent) this long is closed:
    // bounds how long a partial request can hold a connection.
    int idle_timeout_s = 10;
    // Most open connections at once; more are refused at accept.
    int max_connections = 64;
    // Memory for one request's request line and headers; a request that
    // needs more is answered 413, 414 or 431 (libmicrohttpd picks by what
    // overflowed).
    int max_request_header_bytes = 32 << 10;
    // PEM certificate chain (the server's certificate first) and its
    // unencrypted PEM private key: both or neither. Both: HTTPS only.
    std::string tls_cert_file;
    std::string tls_key_file;
    // What GET /metrics serves, collected in this order at every request.
    std::vector<std::shared_ptr<prometheus::Collectable>> collectables;
  };

  // Starts listening. InvalidArgument for bad options or TLS files
  // (naming the file and the problem), Unavailable if the address cannot
  // be bound (in use, or not an address of this machine).
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Create(
      Options options);

  ~MetricsHttpServer();
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  // The bound port.
  int port() const { return port_; }
  // True when the port speaks HTTPS.
  bool tls() const { return tls_; }

  // Internal: the request handler's state (defined in the .cc).
  class Impl;

 private:
  MetricsHttpServer(std::unique_ptr<Impl> impl, MHD_Daemon* daemon, int port,
                    bool tls);

  // Declared before daemon_: destroyed after it, as the handler threads
  // that read it are stopped by the destructor first.
  const std::unique_ptr<Impl> impl_;
  MHD_Daemon* const daemon_;  // owned; stopped by the destructor
  const int port_;
  const bool tls_;
};

}  // namespace biserve
