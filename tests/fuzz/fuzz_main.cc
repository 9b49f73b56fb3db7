// The libFuzzer entry point of fuzz_<BISERVE_FUZZ_TARGET>: the target's body
// from the table every fuzzer and fuzz_replay_test share.
#include <cstddef>
#include <cstdint>

#include "google/protobuf/stubs/logging.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/fuzz_target.h"

// Protobuf logs every string field with invalid UTF-8 it parses: millions
// of lines that slow the fuzzer and bury its report.
extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const biserve::FuzzTarget* const target = [] {
    const biserve::FuzzTarget* found =
        biserve::FindFuzzTarget(BISERVE_FUZZ_TARGET);
    biserve::FuzzCheck(found != nullptr, "unknown fuzz target");
    return found;
  }();
  return target->run(data, size);
}
