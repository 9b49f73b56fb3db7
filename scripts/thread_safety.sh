#!/usr/bin/env bash
# Clang's thread-safety analysis over the whole product and its tests: every
# ABSL_GUARDED_BY, ABSL_EXCLUSIVE_LOCKS_REQUIRED and lock annotation is
# checked by the compiler (on core/common/mutex.h's Mutex, a std::mutex that
# clang understands). A violation fails; nothing else is reported.
#
# The analysis needs no code generation: clang-14 parses every translation
# unit of the project (-fsyntax-only) with the flags of an existing CMake
# build's compile_commands.json (default build/, the one scripts/test.sh
# makes; its generated protobuf headers are built here if missing). A few
# minutes, against half an hour for a full clang build on 2 cores.
#   scripts/thread_safety.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
command -v clang++-14 > /dev/null || scripts/install-deps.sh
start=$(date +%s)
if [ ! -f "$build/compile_commands.json" ]; then
  cmake -S . -B "$build" > /dev/null
fi
# The generated headers the translation units include.
cmake --build "$build" -j "$(nproc)" --target biserve_proto_messages \
  biserve_grpc_service biserve_health_client biserve_golden_messages \
  > /dev/null
python3 - "$build/compile_commands.json" "$PWD" "$(nproc)" <<'PY'
import concurrent.futures, json, os, shlex, subprocess, sys

commands_file, root, jobs = sys.argv[1], sys.argv[2] + "/", int(sys.argv[3])

def analysis_command(entry):
    """The entry's compiler flags, for clang's analysis only."""
    kept, skip = [], False
    for a in shlex.split(entry["command"])[1:]:
        if skip:
            skip = False
        elif a in ("-o", "-MF", "-MT", "-MQ"):
            skip = True
        elif a not in ("-c", "-MD", "-MMD") and not a.startswith("-fsanitize"):
            kept.append(a)
    return ["clang++-14", "-fsyntax-only", *kept, "-Wno-everything",
            "-Wthread-safety", "-Werror=thread-safety"]

# Our sources only: generated protobuf and gRPC code lives in the build tree.
entries = [e for e in json.load(open(commands_file))
           if e["file"].startswith(root)
           and not os.path.relpath(e["file"], root).startswith("build")]

def run(entry):
    done = subprocess.run(analysis_command(entry), cwd=entry["directory"],
                          capture_output=True, text=True)
    return entry["file"], done.returncode, done.stdout + done.stderr

failed = 0
with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
    for source, code, output in pool.map(run, entries):
        if output.strip():
            print(output, end="")
        if code != 0:
            failed += 1
            print(f"thread_safety: FAILED: {os.path.relpath(source, root)}")
if failed:
    sys.exit(f"thread_safety: {failed} of {len(entries)} translation units "
             "fail the analysis")
print(f"thread_safety: {len(entries)} translation units analysed")
PY
echo "thread_safety: clang -Wthread-safety clean ($(( $(date +%s) - start )) s)"
