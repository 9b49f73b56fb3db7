# biserve image: a build stage with Debian's -dev packages, and a slim runtime
# stage with only the runtime libraries. Portable CPU target: no
# -march=native in anything that ships.
#
# Until the gRPC server lands the image runs biserve_eval: by default on the
# bundled example model and its sample input; pass other biserve_eval flags
# to override (docker run IMAGE --model /models/example/1/model.pbtxt ...).

FROM debian:bookworm AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DBISERVE_NATIVE=OFF \
      -DBISERVE_BUILD_TESTS=OFF -DBISERVE_BUILD_BENCH=OFF \
 && cmake --build build -j "$(nproc)" \
 && strip build/bin/*

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libprotobuf32 libabsl20220623 libopenblas0-pthread \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home biserve
COPY --from=build /src/build/bin/biserve_eval /usr/local/bin/
COPY models /models
USER biserve
ENTRYPOINT ["/usr/local/bin/biserve_eval"]
CMD ["--model", "/models/example/1/model.pbtxt", "--input", "/models/example/sample_input.json"]
