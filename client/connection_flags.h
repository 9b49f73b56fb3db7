// The flags every biserve client program takes to reach a server (--server
// and the --tls_* flags), defined once for the `biserve` CLI and
// `biserve_loadtest`.
#pragma once

#include "client/biserve_client.h"

namespace biserve {

// ClientOptions with the server and TLS settings of the flags; the other
// fields keep their defaults.
ClientOptions ClientOptionsFromFlags();

// Makes --help list these flags beside the program's own (by default it
// lists only those of the file named after the program). Call before
// absl::ParseCommandLine.
void ListConnectionFlagsInHelp();

}  // namespace biserve
