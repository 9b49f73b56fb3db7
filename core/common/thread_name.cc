#include "core/common/thread_name.h"

#include <pthread.h>

namespace biserve {

void SetCurrentThreadName(const std::string& name) {
  // Linux keeps 16 bytes with the terminating NUL, and refuses longer names.
  constexpr size_t kMaxLength = 15;
  const std::string cut = name.substr(0, kMaxLength);
  pthread_setname_np(pthread_self(), cut.c_str());
}

}  // namespace biserve
