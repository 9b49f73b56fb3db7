#!/usr/bin/env bash
# Configures and builds biserve (Release, -O3) into build/; programs land in
# build/bin/. Extra arguments go to CMake's configure step, e.g.
# scripts/build.sh -DBISERVE_NATIVE=ON.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build build -j "$(nproc)"
