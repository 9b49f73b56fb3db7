// MakeServerCredentials: the gRPC server's credentials from the --tls_*
// flags: plaintext, TLS, or TLS that requires client certificates (mTLS).
//
// The certificate, key and client CA files are watched by gRPC's own
// FileWatcherCertificateProvider: every refresh interval it re-reads them,
// and new handshakes use what it read, so certificates rotated by
// cert-manager or a Kubernetes Secret take effect without a restart.
// Connections already open keep the session they negotiated: a rotation
// never drops them.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/security/server_credentials.h"

namespace biserve {

struct TlsOptions {
  // PEM certificate chain, the server's own certificate first. Empty (with
  // key_file empty): plaintext.
  std::string cert_file;
  // PEM private key of the chain's first certificate (not encrypted).
  std::string key_file;
  // PEM certificates of the CAs that sign client certificates. Not empty:
  // every client must present a certificate signed by one of them (mTLS).
  // Needs cert_file and key_file.
  std::string client_ca_file;
  // How often the three files are re-read, in seconds (at least 1). A
  // rotated certificate is served at most this long after its files change.
  int refresh_interval_s = 60;
};

// "plaintext", "TLS" or "mTLS": what `options` serve, for the log.
absl::string_view TlsModeName(const TlsOptions& options);

// InsecureServerCredentials() when no file is named; otherwise TLS
// credentials over the watched files, once every file has been read and
// checked: each must be readable and hold PEM (certificates, or a private
// key), and the key must match the certificate. The checks run here, before
// anything listens, because gRPC's provider only logs a bad file and then
// fails every handshake. Errors are INVALID_ARGUMENT or NOT_FOUND, and name
// the flag (--tls_cert_file, ...) and the file as given.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsOptions& options);

}  // namespace biserve
