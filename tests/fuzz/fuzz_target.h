// FuzzTarget: one libFuzzer target's body (its LLVMFuzzerTestOneInput),
// shared by the fuzzer binary (fuzz_main.cc, built with -DBISERVE_FUZZ=ON by
// scripts/fuzz.sh) and by fuzz_replay_test, which runs every committed seed
// and regression input through the same function in the ordinary build.
//
// Each body feeds one input to the code the server or a tool runs on the
// same bytes, and aborts when an invariant between those steps breaks (an
// accepted request that then fails to evaluate, say): libFuzzer and the
// replay test report that like a crash.
//
// Thread-safety: bodies are meant for one thread (libFuzzer calls them from
// one); they share a one-thread evaluation pool and the bundled models.
#pragma once

#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace biserve {

struct FuzzTarget {
  // The binary is fuzz_<name>; its seeds are tests/fuzz/corpus/<name>/, its
  // regression inputs tests/fuzz/regressions/<name>/, its dictionary (if
  // any) tests/fuzz/dict/<name>.dict.
  const char* name;
  // Runs one input; returns 0, as LLVMFuzzerTestOneInput must.
  int (*run)(const uint8_t* data, size_t size);
};

// Every target, in the order scripts/fuzz.sh runs them.
absl::Span<const FuzzTarget> AllFuzzTargets();

// The target called `name`, or null.
const FuzzTarget* FindFuzzTarget(absl::string_view name);

}  // namespace biserve
