#!/usr/bin/env bash
# Installs what biserve needs to build and test, from Debian 12's packages.
# Idempotent: installs only what is missing. Needs root (or sudo).
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libeigen3-dev libabsl-dev prometheus-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libopenblas-pthread-dev
  python3 python3-grpcio python3-protobuf
  libmicrohttpd-dev libgnutls28-dev libssl-dev openssl curl python3-h2
  clang-14 libfuzzer-14-dev
  libonnx-dev
  libhdf5-dev libzip-dev
)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null |
      grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" != 0 ]; then
  sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}"
# Another apt or dpkg (unattended upgrades on a fresh machine) may hold the
# lock: wait for it rather than fail.
lock_wait=(-o DPkg::Lock::Timeout=900)
$sudo apt-get "${lock_wait[@]}" update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get "${lock_wait[@]}" install -y -qq \
  --no-install-recommends "${missing[@]}"
