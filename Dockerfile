# lexembed's container image: the `lexembed` binary and the ONNX Runtime library on a slim Debian,
# running as a non-root user, nothing written outside /tmp and $LEXEMBED_HOME (a read-only root file
# system works: mount writable volumes there, as the Helm chart does).
#
#   buildah bud -t lexembed:cpu .                                  # or: docker build -t lexembed:cpu .
#   buildah bud -t lexembed:cuda --build-arg FLAVOR=cuda \
#       --build-arg BASE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 .   # GPU: onnxruntime-gpu
#
# Build arguments:
#   BASE      the runtime base (default debian:bookworm-slim; the CUDA flavor needs a CUDA + cuDNN image
#             matching the onnxruntime-gpu release)
#   BUILDER   the Rust image that compiles lexembed (a release build of the workspace: ~1 hour on 2 cores)
#   FLAVOR    cpu (PyPI onnxruntime) or cuda (PyPI onnxruntime-gpu: CUDA and TensorRT providers)
#   ORT_VERSION  the ONNX Runtime release, as integration/setup.sh pins it
#   BINARY    source (compile here) or prebuilt (dist/lexembed from the build context, e.g. a binary
#             built on a machine with the same glibc); ORT likewise: pypi or prebuilt
#             (dist/libonnxruntime.so.<version>). The repository's image test uses the prebuilt ones.
ARG BASE=debian:bookworm-slim
ARG BUILDER=rust:1.92-bookworm
ARG BINARY=source
ARG ORT=pypi

# ---- the binary, compiled ----
FROM ${BUILDER} AS binary-source
RUN apt-get update \
 && apt-get install -y --no-install-recommends protobuf-compiler cmake libssl-dev libcurl4-openssl-dev \
      zlib1g-dev pkg-config clang \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p lexembed \
 && install -D -s target/release/lexembed /out/lexembed

# ---- or taken from the build context ----
FROM ${BASE} AS binary-prebuilt
COPY dist/lexembed /out/lexembed

# ---- ONNX Runtime from its PyPI wheel (the library lexembed loads at run time) ----
FROM ${BASE} AS ort-pypi
ARG FLAVOR=cpu
ARG ORT_VERSION=1.31.1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-pip unzip \
 && rm -rf /var/lib/apt/lists/*
RUN pkg=$([ "$FLAVOR" = cuda ] && echo onnxruntime-gpu || echo onnxruntime) \
 && pip3 download --no-deps --only-binary=:all: --break-system-packages -d /tmp/whl "$pkg==$ORT_VERSION" \
 && unzip -q /tmp/whl/*.whl 'onnxruntime/capi/libonnxruntime*' -d /tmp/ort \
 && mkdir -p /out && cp /tmp/ort/onnxruntime/capi/libonnxruntime* /out/ \
 && rm -rf /tmp/whl /tmp/ort

FROM ${BASE} AS ort-prebuilt
COPY dist/libonnxruntime.so.* /out/

FROM binary-${BINARY} AS binary
FROM ort-${ORT} AS ort

# ---- the runtime ----
FROM ${BASE} AS runtime
ARG ORT_VERSION=1.31.1
# TLS for object storage and Kafka, libcurl and zlib for the Kafka client.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 libcurl4 zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 lexembed \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/lexembed --shell /usr/sbin/nologin lexembed \
 && install -d -o 10001 -g 10001 /var/lib/lexembed
COPY --from=ort /out/ /usr/lib/lexembed/
COPY --from=binary /out/lexembed /usr/local/bin/lexembed
ENV ORT_DYLIB_PATH=/usr/lib/lexembed/libonnxruntime.so.${ORT_VERSION} \
    LEXEMBED_HOME=/var/lib/lexembed \
    LEXEMBED_LOG_JSON=true
USER 10001:10001
WORKDIR /var/lib/lexembed
ENTRYPOINT ["/usr/local/bin/lexembed"]
CMD ["--help"]
