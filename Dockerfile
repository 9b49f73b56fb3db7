# biserve image: biserve_server serving the bundled models (/models).
#
#   podman build -t biserve .          (built and checked by
#                                       deploy/test-image.sh)
#   podman run --rm --network host biserve                       # ports 8001, 8002
#   podman run --rm --network host biserve --port=9001 --metrics_port=9002
#   podman run --rm -p 8001:8001 -p 8002:8002 -v ./models:/models:ro biserve
#
# Arguments after the image name are biserve_server flags, appended to the
# defaults below (the last value of a flag wins, so --model_repository and
# --host can be overridden too).
#
# Two stages: a build stage with Debian's -dev packages (scripts/install-deps.sh)
# and a runtime stage on bookworm-slim with only the shared libraries the two
# shipped programs load. Portable CPU target: BISERVE_NATIVE=OFF, no
# -march=native; the hot kernels pick AVX-512/AVX2 at load time, and OpenBLAS
# picks its own kernels for the CPU it runs on.

FROM debian:bookworm AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
# Only the server, the process it reads Keras files in
# (biserve_keras_import, found beside the server: importers/isolated_import.h)
# and the command-line client (the HEALTHCHECK uses it): no tests, no
# benchmarks, no Python stubs.
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DBISERVE_NATIVE=OFF \
      -DBISERVE_BUILD_TESTS=OFF -DBISERVE_BUILD_BENCH=OFF \
 && cmake --build build -j "$(nproc)" \
      --target biserve_server biserve_keras_import biserve \
 && strip build/bin/biserve_server build/bin/biserve_keras_import \
      build/bin/biserve

FROM debian:bookworm-slim AS runtime
# Runtime libraries of biserve_server and biserve (ldd, mapped to packages):
# gRPC, protobuf, Abseil, OpenBLAS (pthread), prometheus-cpp's core,
# libmicrohttpd (the /metrics port), libonnx1's libonnx_proto (the server
# imports model.onnx files from its repository) (+ what they depend on:
# libssl3, libre2-9, libc-ares2, libgnutls30, libgfortran5).
# To stay small, files of those packages that neither program loads are not
# installed: dpkg path-exclude (as the slim base does for docs) for gRPC's
# unsecure/channelz/plugin libraries, libprotoc (needed only by the protoc
# plugin library), libonnx.so.1 (ONNX's checker and shape inference, 3 MB;
# biserve reads the protobuf only) and OpenSSL's engines and legacy
# provider; OpenBLAS' separate
# libblas.so.3/liblapack.so.3 builds (7.5 MB; biserve links
# libopenblas.so.0) are deregistered from update-alternatives and deleted.
RUN printf '%s\n' \
      '# biserve runtime image: files no shipped program loads' \
      'path-exclude=/usr/lib/*/libgrpc_unsecure.so*' \
      'path-exclude=/usr/lib/*/libgrpc++_unsecure.so*' \
      'path-exclude=/usr/lib/*/libgrpc_plugin_support.so*' \
      'path-exclude=/usr/lib/*/libgrpcpp_channelz.so*' \
      'path-exclude=/usr/lib/*/libprotoc.so*' \
      'path-exclude=/usr/lib/*/libonnx.so*' \
      'path-exclude=/usr/lib/*/engines-3/*' \
      'path-exclude=/usr/lib/*/ossl-modules/*' \
      > /etc/dpkg/dpkg.cfg.d/biserve-runtime-excludes \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libgrpc++1.51 libgrpc29 libprotobuf32 libabsl20220623 \
      libopenblas0-pthread libprometheus-cpp-core1.0 libmicrohttpd12 libonnx1 \
      libhdf5-103-1 libhdf5-hl-100 libzip4 \
 && for lib in /usr/lib/*/openblas-pthread/libblas.so.3 \
               /usr/lib/*/openblas-pthread/liblapack.so.3; do \
      triplet=${lib#/usr/lib/}; triplet=${triplet%%/*}; \
      update-alternatives --quiet --remove "${lib##*/}-$triplet" "$lib" \
        && rm -f "$lib" || exit 1; \
    done \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log \
 && useradd --uid 10001 --user-group --no-create-home --no-log-init \
      --home-dir /nonexistent --shell /usr/sbin/nologin biserve

# The health check: `biserve health` exits 0 only when the server's overall
# status (grpc.health.v1, service "") is SERVING. It reads the server's
# --host/--port from the command line of PID 1 (the server itself, thanks to
# the exec-form ENTRYPOINT; with --init the flags are still in PID 1's argv),
# so `podman run IMAGE --port=9001` is checked on 9001.
RUN printf '%s\n' \
      '#!/bin/sh' \
      '# HEALTHCHECK of the biserve image: gRPC health of the server (service "").' \
      'set -- $(tr "\\000" " " < /proc/1/cmdline)' \
      'host=127.0.0.1 port=8001' \
      'while [ $# -gt 0 ]; do' \
      '  case $1 in' \
      '    --port=*|-port=*) port=${1#*=} ;;' \
      '    --host=*|-host=*) host=${1#*=} ;;' \
      '    --port|-port) [ $# -gt 1 ] && { port=$2; shift; } ;;' \
      '    --host|-host) [ $# -gt 1 ] && { host=$2; shift; } ;;' \
      '  esac' \
      '  shift' \
      'done' \
      'case $host in 0.0.0.0|""|::|"[::]") host=127.0.0.1 ;; esac' \
      'exec /usr/local/bin/biserve --server "$host:$port" --timeout_s 3 health' \
      > /usr/local/bin/biserve-healthcheck \
 && chmod 0755 /usr/local/bin/biserve-healthcheck

COPY --from=build /src/build/bin/biserve_server \
     /src/build/bin/biserve_keras_import /src/build/bin/biserve /usr/local/bin/
# The bundled model repository (models/*/train, the training code, is left
# out by .dockerignore). Mount another repository over /models, or pass
# --model_repository=DIR.
COPY models /models

USER 10001:10001
# gRPC (biserve.v1, Open Inference Protocol, health; reflection with
# --enable_reflection); /metrics.
EXPOSE 8001 8002
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/biserve-healthcheck"]
# SIGTERM (podman/docker stop, Kubernetes) goes straight to the server, PID 1:
# health NOT_SERVING, new calls refused, queued requests finish within
# --drain_timeout_s (30 s; give `stop` a longer timeout), exit 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/biserve_server", "--model_repository=/models", "--host=0.0.0.0"]
# Empty, so that the base image's CMD ["bash"] is not passed to the server;
# arguments of `run` are appended to the ENTRYPOINT.
CMD []
