#!/usr/bin/env bash
# Clang's thread-safety analysis over the whole product and its tests: every
# ABSL_GUARDED_BY, ABSL_EXCLUSIVE_LOCKS_REQUIRED and lock annotation is
# checked by the compiler (on core/common/mutex.h's Mutex, a std::mutex that
# clang understands). A violation fails the build; other warnings stay
# warnings. Builds in build-thread-safety/ with clang-14, without
# optimisation (only the analysis matters here), and runs nothing.
#   scripts/thread_safety.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
launcher=()
command -v ccache > /dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
start=$(date +%s)
CXX=clang++-14 cmake -S . -B build-thread-safety -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_CXX_FLAGS_DEBUG="-O0 -g0" \
  -DCMAKE_CXX_FLAGS="-Wthread-safety -Werror=thread-safety" \
  "${launcher[@]}" > /dev/null
cmake --build build-thread-safety -j "$(nproc)"
echo "thread_safety: clang -Wthread-safety clean ($(( $(date +%s) - start )) s)"
