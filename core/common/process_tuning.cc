#include "core/common/process_tuning.h"

#include <malloc.h>
#include <sched.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
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

absl::Status UseBatchScheduling() {
  // Every thread there is already (libraries start some when they load,
  // e.g. OpenBLAS's pool); threads started later inherit the policy.
  std::error_code error;
  std::filesystem::directory_iterator tasks("/proc/self/task", error);
  if (error) {
    return absl::UnavailableError(absl::StrCat(
        "SCHED_BATCH not set: /proc/self/task: ", error.message()));
  }
  const sched_param param = {.sched_priority = 0};
  for (const std::filesystem::directory_entry& task : tasks) {
    int tid = 0;
    if (!absl::SimpleAtoi(task.path().filename().string(), &tid)) continue;
    if (sched_setscheduler(tid, SCHED_BATCH, &param) != 0) {
      return absl::UnavailableError(
          absl::StrCat("SCHED_BATCH refused: ", std::strerror(errno)));
    }
  }
  return absl::OkStatus();
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
