// biserve_keras_import: the process ImportKerasFileIsolated
// (isolated_import.h) starts to read one Keras file, so that libhdf5's
// crashes, runaway allocations and endless loops on a damaged file end this
// process, never the server.
//
//   biserve_keras_import <path> <model name> <address space bytes>
//
// Writes the outcome (EncodeImportOutcome) to file descriptor 3 and exits 0;
// any other end (a signal, a timeout) is the parent's to describe. Not meant
// to be run by hand.
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/string_view.h"
#include "importers/isolated_import.h"
#include "importers/keras_file_importer.h"

namespace biserve {
namespace {

constexpr int kOutcomeFd = 3;

// The file being read, for OutOfMemory's message.
const char* file_path = "keras file";

void WriteAll(absl::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = write(kOutcomeFd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) _exit(2);
    bytes.remove_prefix(static_cast<size_t>(n));
  }
}

// An allocation past RLIMIT_AS: said so, not std::terminate's SIGABRT.
// (Only a short, preformatted message: the heap is exhausted.)
void OutOfMemory() {
  WriteAll("8\n");
  WriteAll(file_path);
  WriteAll(
      ": out of memory reading the file (more than the import's "
      "address space limit): the file is damaged or too large");
  _exit(0);
}

// Test only (IsolatedImportOptions::test_fault): misbehave as libhdf5 does.
void InjectTestFault() {
  const char* fault = std::getenv("BISERVE_KERAS_IMPORT_FAULT");
  if (fault == nullptr) return;
  const absl::string_view f = fault;
  if (f == "crash") {
    volatile int* null = nullptr;
    *null = 1;
  } else if (f == "hang") {
    for (;;) pause();
  } else if (f == "allocate") {
    std::vector<char> huge(size_t{1} << 46);  // as a damaged length would
    WriteAll(absl::string_view(huge.data(), 1));
  }
}

// The sanitizers' runtimes, present only in sanitized builds (weak: null
// otherwise). Told at run time, since the TSan build undefines
// __SANITIZE_THREAD__ for Abseil's headers.
extern "C" void __asan_init() __attribute__((weak));
extern "C" void __tsan_init() __attribute__((weak));

bool LimitAddressSpace(absl::string_view bytes_text) {
  int64_t bytes = 0;
  if (!absl::SimpleAtoi(bytes_text, &bytes) || bytes <= 0) return false;
  // A sanitizer's shadow memory needs terabytes of addresses.
  if (&__asan_init != nullptr || &__tsan_init != nullptr) return true;
  const rlimit limit = {static_cast<rlim_t>(bytes), static_cast<rlim_t>(bytes)};
  return setrlimit(RLIMIT_AS, &limit) == 0;
}

}  // namespace
}  // namespace biserve

// In a sanitized build the helper must still die of its signal (the parent
// names it) and fail an impossible allocation with bad_alloc, as a plain
// build does, rather than print a sanitizer report and exit with its code.
// Options from the environment still take precedence.
extern "C" const char* __asan_default_options() {
  return "handle_segv=0:allocator_may_return_null=1";
}
extern "C" const char* __tsan_default_options() {
  return "handle_segv=0:allocator_may_return_null=1";
}

int main(int argc, char** argv) {
  if (argc != 4 || !biserve::LimitAddressSpace(argv[3])) {
    const char usage[] =
        "biserve_keras_import <path> <model name> <address space bytes>: "
        "started by biserve to read a Keras file, not by hand\n";
    (void)!write(2, usage, sizeof(usage) - 1);
    return 2;
  }
  biserve::file_path = argv[1];
  std::set_new_handler(biserve::OutOfMemory);
  biserve::InjectTestFault();
  biserve::KerasImportOptions options;
  options.model_name = argv[2];
  biserve::WriteAll(
      biserve::EncodeImportOutcome(biserve::ImportKerasFile(argv[1], options)));
  // At once: nothing after the outcome may hang or fail (no destructors,
  // no libhdf5 atexit close of a damaged file).
  _exit(0);
}
