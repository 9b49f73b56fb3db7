// ImportKerasFileIsolated: ImportKerasFile in a separate process, so that
// whatever libhdf5 does to a hostile file, the caller gets a status and goes
// on. libhdf5 1.10.8, reading the variable-length strings of a damaged file,
// can overflow a buffer, allocate whatever size the file states or loop
// forever (found by the keras_import fuzz target); none of that can be
// caught inside the process that runs it.
//
// The import runs in `biserve_keras_import` (importers/keras_import_main.cc),
// a helper executable installed beside the program (the server, the tools,
// the tests: all in one bin/ folder, and in /usr/local/bin of the image). It
// is started with posix_spawn, never fork(): a fork of the multithreaded
// server (gRPC, OpenBLAS, the repository watcher) could deadlock in the
// child on a lock some other thread held. The helper limits its own address
// space (RLIMIT_AS), imports, and writes the outcome to file descriptor 3,
// which the parent reads with a size bound and a time limit.
//
// Thread-safe: each call spawns its own process and waits for that pid only.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "biserve/v1/model.pb.h"
#include "importers/keras_file_importer.h"

namespace biserve {

struct IsolatedImportOptions {
  // The helper executable; empty means `biserve_keras_import` in the folder
  // of the running executable (/proc/self/exe).
  std::string helper_path;
  // After this the helper is killed (SIGKILL) and the import fails with
  // DEADLINE_EXCEEDED: a damaged file can make libhdf5 loop forever.
  absl::Duration timeout = absl::Seconds(60);
  // The helper's RLIMIT_AS: this much plus 8 times the file's size, so that
  // an allocation of the size a damaged file states fails in the helper.
  // (Not applied in AddressSanitizer builds, whose shadow memory needs
  // terabytes of address space.)
  int64_t base_address_space_bytes = int64_t{4} << 30;
  // Test only: passed to the helper as BISERVE_KERAS_IMPORT_FAULT ("crash",
  // "hang" or "allocate"), which then misbehaves the way libhdf5 does on
  // a hostile file. Empty in production.
  std::string test_fault;
};

// The file name of the helper, looked for next to the running executable.
inline constexpr absl::string_view kKerasImportHelperName =
    "biserve_keras_import";

// ImportKerasFile(path, import_options) run by the helper. Its own errors
// come back unchanged; a helper that dies of a signal (a crash), runs out of
// memory, outlives `options.timeout` or writes more than the model could
// need gives an error that starts with the path and says what happened:
// INVALID_ARGUMENT (crashed: the file is damaged), RESOURCE_EXHAUSTED (out of
// memory), DEADLINE_EXCEEDED (took too long). FAILED_PRECONDITION when the
// helper cannot be started (not installed beside the program).
absl::StatusOr<v1::Model> ImportKerasFileIsolated(
    const std::string& path, const KerasImportOptions& import_options,
    const IsolatedImportOptions& options = {});

// The helper's side (keras_import_main.cc): the outcome of an import as the
// bytes written to the parent, and back. Exposed for the helper and tests.
std::string EncodeImportOutcome(const absl::StatusOr<v1::Model>& outcome);
absl::StatusOr<v1::Model> DecodeImportOutcome(const std::string& path,
                                              absl::string_view bytes);

}  // namespace biserve
