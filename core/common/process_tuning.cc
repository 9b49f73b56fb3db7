#include "core/common/process_tuning.h"

#include <malloc.h>

#include "absl/synchronization/mutex.h"

#ifdef BISERVE_OPENBLAS
extern "C" char* openblas_get_corename();
#endif

namespace biserve {

void PrepareProcessForEvaluation() {
  mallopt(M_MMAP_THRESHOLD, 1 << 30);  // serve large blocks from the heap
  mallopt(M_TRIM_THRESHOLD, 1 << 30);  // and keep them there for reuse
  TurnOffMutexDeadlockDetection();
}

void TurnOffMutexDeadlockDetection() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

void ReleaseFreeMemory() { malloc_trim(0); }

const char* GemmKernelName() {
#ifdef BISERVE_OPENBLAS
  return openblas_get_corename();
#else
  return "Eigen";
#endif
}

}  // namespace biserve
