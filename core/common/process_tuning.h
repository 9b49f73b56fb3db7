// PrepareProcessForEvaluation: process-wide settings that a program which
// evaluates batches makes first thing in main(). Programs call it; the
// library never does.
#pragma once

#include "absl/status/status.h"

namespace biserve {

// Memory: a batch's packed buffers run to tens of megabytes (W4: 52 MB of
// input projection). glibc serves blocks above its mmap threshold (at most
// 32 MB after its own adjustment) with fresh mmaps and unmaps them on free,
// so every batch paid page faults and kernel zeroing: measured 15% of W3's
// time. Large blocks now come from the heap and stay there for reuse; the
// cost is that the heap keeps its high-water mark.
//
// Also turns off absl::Mutex's deadlock detection
// (TurnOffMutexDeadlockDetection).
//
// REQUIRES: called before any thread starts.
void PrepareProcessForEvaluation();

// Debian's Abseil is built without NDEBUG, so every absl::Mutex (gRPC's, on
// every call) maintains the debug-only lock-order graph: 1 to 2% of a loaded
// server's CPU in GraphCycles alone (perf, bench/serving.sh). Release
// builds of Abseil, as TF Serving and Triton ship them, have it off.
// biserve's own locks are std::mutex underneath (core/common/mutex.h) and
// checked by clang's thread-safety analysis instead.
void TurnOffMutexDeadlockDetection();

// Puts every thread of the process, and so every thread started from then
// on, under Linux's SCHED_BATCH policy: a thread that wakes up waits for the
// running one's time slice instead of preempting it at once. On a busy CPU a
// server's network threads wake for every request and every reply; under
// the default policy each wake-up interrupts the thread computing a batch
// (on a pinned one-CPU server, W2 at concurrency 64: 7 thread switches per
// request). Measured there: +6 to 13% requests/s, p99 no worse
// (bench/RESULTS.md). CPU shares and nice values are unchanged; SCHED_BATCH
// needs no privilege. Error (with errno's text) if the system refuses it,
// e.g. a seccomp filter; the process then runs on as it was.
//
// Call it before the program starts threads of its own: threads inherit
// the policy of the thread that starts them.
absl::Status UseBatchScheduling();

// Returns free heap memory to the system (malloc_trim): after a model
// version unloads, so that its weights do not stay resident under the heap's
// high-water mark, and after large requests (server/memory_returner.h).
// Costs a walk of the heap; call it after such events, not per request.
void ReleaseFreeMemory();

// The GEMM kernel set OpenBLAS runs (e.g. "Cooperlake", "Haswell"), for
// benchmark reports; "Eigen" without OpenBLAS. OpenBLAS picks it for the
// CPU at load time unless OPENBLAS_CORETYPE says otherwise.
const char* GemmKernelName();

}  // namespace biserve
