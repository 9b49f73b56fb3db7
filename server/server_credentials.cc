#include "server/server_credentials.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_credentials_options.h"

namespace biserve {
namespace {

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Deleter {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct KeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using UniqueBio = std::unique_ptr<BIO, BioDeleter>;
using UniqueX509 = std::unique_ptr<X509, X509Deleter>;
using UniqueKey = std::unique_ptr<EVP_PKEY, KeyDeleter>;

// "--tls_cert_file 'certs/tls.crt'": how every message names a file.
std::string Named(absl::string_view flag, const std::string& path) {
  return absl::StrCat("--", flag, " '", path, "'");
}

// The whole file, or why it cannot be read (missing, a directory, no
// permission: the system's own words).
absl::StatusOr<std::string> ReadPemFile(absl::string_view flag,
                                        const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    const int error = errno;
    const std::string message = absl::StrCat(
        Named(flag, path), ": cannot read it: ", std::strerror(error));
    return error == ENOENT ? absl::NotFoundError(message)
                           : absl::InvalidArgumentError(message);
  }
  std::string content;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file)) > 0) {
    content.append(buffer, n);
  }
  const int error = errno;
  const bool failed = std::ferror(file) != 0;
  std::fclose(file);
  if (failed) {
    return absl::InvalidArgumentError(absl::StrCat(
        Named(flag, path), ": cannot read it: ", std::strerror(error)));
  }
  return content;
}

UniqueBio MemoryBio(const std::string& content) {
  return UniqueBio(
      BIO_new_mem_buf(content.data(), static_cast<int>(content.size())));
}

// Every certificate of a PEM file, in order; an error unless there is at
// least one and every CERTIFICATE block parses.
absl::StatusOr<std::vector<UniqueX509>> ParseCertificates(
    absl::string_view flag, const std::string& path) {
  absl::StatusOr<std::string> content = ReadPemFile(flag, path);
  if (!content.ok()) return content.status();
  UniqueBio bio = MemoryBio(*content);
  std::vector<UniqueX509> certs;
  ERR_clear_error();
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    certs.emplace_back(cert);
  }
  // Reading stops at the end of the file (no further BEGIN line) or at a
  // block that does not parse.
  const unsigned long error = ERR_peek_last_error();
  ERR_clear_error();
  const bool at_end = ERR_GET_LIB(error) == ERR_LIB_PEM &&
                      ERR_GET_REASON(error) == PEM_R_NO_START_LINE;
  if (!at_end) {
    return absl::InvalidArgumentError(
        absl::StrCat(Named(flag, path), ": certificate ", certs.size() + 1,
                     " is not a valid PEM certificate (",
                     ERR_reason_error_string(error), ")"));
  }
  if (certs.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(Named(flag, path),
                     ": no PEM certificate in it (expected a '-----BEGIN "
                     "CERTIFICATE-----' block)"));
  }
  return certs;
}

// Refuses to ask for a passphrase: OpenSSL's default would prompt on the
// terminal of a server that has none.
int NoPassphrase(char*, int, int, void*) { return -1; }

absl::StatusOr<UniqueKey> ParsePrivateKey(absl::string_view flag,
                                          const std::string& path) {
  absl::StatusOr<std::string> content = ReadPemFile(flag, path);
  if (!content.ok()) return content.status();
  if (absl::StrContains(*content, "ENCRYPTED")) {
    return absl::InvalidArgumentError(absl::StrCat(
        Named(flag, path),
        ": the private key is encrypted; give it unencrypted (as Kubernetes "
        "TLS Secrets hold it), e.g. `openssl pkey -in KEY -out KEY.plain`"));
  }
  UniqueBio bio = MemoryBio(*content);
  ERR_clear_error();
  UniqueKey key(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  ERR_clear_error();
  if (key == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(Named(flag, path),
                     ": no PEM private key in it (expected a '-----BEGIN "
                     "PRIVATE KEY-----' block, or an RSA or EC one)"));
  }
  return key;
}

absl::Status CheckFiles(const TlsOptions& options) {
  absl::StatusOr<std::vector<UniqueX509>> chain =
      ParseCertificates("tls_cert_file", options.cert_file);
  if (!chain.ok()) return chain.status();
  absl::StatusOr<UniqueKey> key =
      ParsePrivateKey("tls_key_file", options.key_file);
  if (!key.ok()) return key.status();
  ERR_clear_error();
  const bool match = X509_check_private_key(chain->front().get(), key->get());
  ERR_clear_error();
  if (!match) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the private key in ", Named("tls_key_file", options.key_file),
        " does not match the certificate in ",
        Named("tls_cert_file", options.cert_file),
        " (its first certificate must be the server's own)"));
  }
  if (!options.client_ca_file.empty()) {
    absl::StatusOr<std::vector<UniqueX509>> cas =
        ParseCertificates("tls_client_ca_file", options.client_ca_file);
    if (!cas.ok()) return cas.status();
  }
  return absl::OkStatus();
}

}  // namespace

absl::string_view TlsModeName(const TlsOptions& options) {
  if (options.cert_file.empty()) return "plaintext";
  return options.client_ca_file.empty() ? "TLS" : "mTLS";
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsOptions& options) {
  if (options.cert_file.empty() != options.key_file.empty()) {
    return absl::InvalidArgumentError(
        options.cert_file.empty()
            ? "--tls_key_file needs --tls_cert_file (TLS takes both)"
            : "--tls_cert_file needs --tls_key_file (TLS takes both)");
  }
  if (options.cert_file.empty()) {
    if (!options.client_ca_file.empty()) {
      return absl::InvalidArgumentError(
          "--tls_client_ca_file (mTLS) needs --tls_cert_file and "
          "--tls_key_file");
    }
    return grpc::InsecureServerCredentials();
  }
  if (options.refresh_interval_s < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls_refresh_interval_s must be at least 1; was ",
                     options.refresh_interval_s));
  }
  if (absl::Status s = CheckFiles(options); !s.ok()) return s;

  // One provider watches all three files; the key and certificate are read
  // as a pair (gRPC retries a read during which either file changed).
  auto provider =
      std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
          options.key_file, options.cert_file, options.client_ca_file,
          static_cast<unsigned int>(options.refresh_interval_s));
  grpc::experimental::TlsServerCredentialsOptions tls(provider);
  tls.watch_identity_key_cert_pairs();
  if (options.client_ca_file.empty()) {
    tls.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  } else {
    tls.watch_root_certs();
    tls.set_cert_request_type(
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  std::shared_ptr<grpc::ServerCredentials> credentials =
      grpc::experimental::TlsServerCredentials(tls);
  if (credentials == nullptr) {
    return absl::InternalError("gRPC refused the TLS server credentials");
  }
  return credentials;
}

}  // namespace biserve
