#include "client/connection_flags.h"

#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"

ABSL_FLAG(std::string, server, "localhost:8001", "Server address, host:port.");
ABSL_FLAG(
    std::string, tls_roots, "",
    "Use TLS, trusting the PEM root certificates in this file (\"system\" "
    "for the system's). Default: plaintext.");
ABSL_FLAG(std::string, tls_client_cert, "",
          "mTLS: present this PEM client certificate (with "
          "--tls_client_key; needs --tls_roots).");
ABSL_FLAG(std::string, tls_client_key, "",
          "mTLS: the PEM private key of --tls_client_cert.");
ABSL_FLAG(std::string, tls_server_name, "",
          "TLS: the name the server's certificate must carry, instead of the "
          "host of --server (e.g. when connecting by IP address).");

namespace biserve {

ClientOptions ClientOptionsFromFlags() {
  ClientOptions options;
  options.server = absl::GetFlag(FLAGS_server);
  options.tls_root_certs_path = absl::GetFlag(FLAGS_tls_roots);
  options.tls_client_cert_path = absl::GetFlag(FLAGS_tls_client_cert);
  options.tls_client_key_path = absl::GetFlag(FLAGS_tls_client_key);
  options.tls_server_name = absl::GetFlag(FLAGS_tls_server_name);
  return options;
}

void ListConnectionFlagsInHelp() {
  absl::FlagsUsageConfig config;
  config.contains_help_flags = [](absl::string_view file) {
    return absl::StrContains(file, "client/");
  };
  absl::SetFlagsUsageConfig(config);
}

}  // namespace biserve
