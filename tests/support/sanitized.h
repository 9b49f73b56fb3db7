// Sanitized: whether this test runs in a ThreadSanitizer or AddressSanitizer
// build, whose runtimes replace malloc (with their own retention: ASan's
// quarantine, TSan's caches) and the process's address-space layout (shadow
// memory of terabytes). Tests of memory limits and of resident memory hold
// for plain builds only.
#pragma once

// The runtimes' entry points, present only in sanitized builds (the TSan
// build undefines __SANITIZE_THREAD__, so this is told at run time).
extern "C" void __asan_init() __attribute__((weak));
extern "C" void __tsan_init() __attribute__((weak));

namespace biserve {

inline bool Sanitized() {
  return &__asan_init != nullptr || &__tsan_init != nullptr;
}

}  // namespace biserve
