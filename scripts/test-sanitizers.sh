#!/usr/bin/env bash
# The whole test suite again under ThreadSanitizer, then under
# AddressSanitizer with UndefinedBehaviorSanitizer, each in its own build
# tree (build-tsan/, build-asan/). Installs what is missing first.
#   scripts/test-sanitizers.sh [thread|address]...   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
sanitizers=("$@")
[ "${#sanitizers[@]}" -eq 0 ] && sanitizers=(thread address)
for sanitizer in "${sanitizers[@]}"; do
  dir=build-tsan
  [ "$sanitizer" = address ] && dir=build-asan
  start=$(date +%s)
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DBISERVE_SANITIZE="$sanitizer" -DBISERVE_BUILD_BENCH=OFF > /dev/null
  cmake --build "$dir" -j "$(nproc)"
  built=$(date +%s)
  # halt_on_error: a report fails the test that caused it.
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/tests/tsan.supp" \
  ASAN_OPTIONS="detect_leaks=1" \
  LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp print_suppressions=0" \
  UBSAN_OPTIONS="halt_on_error=1 print_stacktrace=1" \
    ctest --test-dir "$dir" --output-on-failure -j "$(nproc)" --timeout 900
  done_at=$(date +%s)
  echo "test-sanitizers: $sanitizer: build $((built - start)) s, tests $((done_at - built)) s"
done
