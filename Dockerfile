# syntax=docker/dockerfile:1
# zerorl: one image for every actor. The role is the argument:
#   docker run IMAGE serve rollout --config /etc/zerorl/config/run.yaml
# (ENTRYPOINT is the zerorl binary; `zerorl k8s render` writes the pods' args.)
#
# Stage 1 builds on Debian 12 with scripts/install-deps, the project's one install
# step, plus Debian's CUDA toolkit (non-free, CUDA 11.8 with nvcc) when
# WITH_CUDA=1, so the CUDA backend is compiled in.
# Stage 2 is debian:12-slim with only the shared libraries the binary links,
# found by ldd in stage 1 and installed by package name, so build and runtime
# have the same ABI. GPU roles get the CUDA runtime the same way (Debian's
# libcudart/libcublas packages); the driver (libcuda) comes from the node
# through the NVIDIA container toolkit. We chose this over an nvidia/cuda
# Ubuntu runtime base because every other library (gRPC 1.51, protobuf 3.21,
# RocksDB 7.8, Abseil) is Debian 12's: on Ubuntu they would have to be copied in
# by hand. WITH_CUDA=0 builds a CPU-only image (kind, minikube).
#
#   docker build -t REGISTRY/zerorl:0.1.0 .                    # CUDA + CPU
#   docker build --build-arg WITH_CUDA=0 -t zerorl:0.1.0 .     # CPU only
#   make image                                                 # localhost/zerorl:dev, CPU only, docker or
#                                                              # podman, base made locally when offline
#
# The build stage compiles through ccache when a cache directory is mounted at
# /ccache for the build (`make image` does this with podman: -v HOST_CACHE:/ccache),
# so objects the host already compiled for `make test` are hits: the tree is at
# /src and the build directory at /src/build, as the host has REPO and REPO/build,
# and CCACHE_BASEDIR/CCACHE_NOHASHDIR make the cached commands path-independent
# (ccache also hashes the locale variables: both sides compile without them).
# Without the mount it compiles from scratch, as before.
ARG DEBIAN_IMAGE=debian:12
ARG RUNTIME_IMAGE=debian:12-slim

FROM ${DEBIAN_IMAGE} AS build
ARG WITH_CUDA=1
ARG CUDA_BUILD_PACKAGES="nvidia-cuda-toolkit"
ARG JOBS=8
ENV DEBIAN_FRONTEND=noninteractive
RUN if [ "$WITH_CUDA" = 1 ]; then \
      sed -i 's/^Components: main$/Components: main contrib non-free non-free-firmware/' \
        /etc/apt/sources.list.d/debian.sources; \
    fi
WORKDIR /src
COPY scripts/install-deps scripts/install-deps
# --build-only: what building zerorl and zerorlctl needs (no test tools, no PyTorch).
RUN bash scripts/install-deps --build-only \
 && if [ "$WITH_CUDA" = 1 ]; then apt-get install -y -qq --no-install-recommends $CUDA_BUILD_PACKAGES; fi \
 && rm -rf /var/lib/apt/lists/*
COPY . .
RUN if [ -d /ccache ] && [ -w /ccache ]; then \
      launcher="-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache"; \
      export CCACHE_DIR=/ccache CCACHE_BASEDIR=/src CCACHE_NOHASHDIR=1; unset LANG LC_ALL LC_CTYPE LC_MESSAGES; \
      ccache -z >/dev/null; \
    fi; \
    rm -rf /src/build \
 && cmake -S . -B /src/build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $launcher \
      -DZERORL_CUDA=$([ "$WITH_CUDA" = 1 ] && echo ON || echo OFF) \
 && cmake --build /src/build -j "$JOBS" --target zerorl zerorlctl \
 && if [ -n "$launcher" ]; then ccache -s | grep -Ei '^ *(hits|misses)' | tr -s ' ' | sed 's/^/ccache: /'; fi \
 && mkdir -p /build && cp /src/build/zerorl /src/build/zerorlctl /build/ && rm -rf /src/build \
 && strip --strip-debug /build/zerorl /build/zerorlctl
# The Debian packages that own the shared libraries the binaries load.
RUN set -e; mkdir -p /out; \
    for lib in $(ldd /build/zerorl /build/zerorlctl | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u); do \
      real=$(readlink -f "$lib"); \
      dpkg -S "$lib" 2>/dev/null || dpkg -S "$real" 2>/dev/null || dpkg -S "/usr$lib" 2>/dev/null \
        || dpkg -S "${real#/usr}" 2>/dev/null || { echo "no package owns $lib" >&2; exit 1; }; \
    done | cut -d: -f1 | sort -u > /out/runtime-packages; \
    cat /out/runtime-packages

FROM ${RUNTIME_IMAGE} AS runtime
ARG WITH_CUDA=1
ENV DEBIAN_FRONTEND=noninteractive
RUN if [ "$WITH_CUDA" = 1 ]; then \
      sed -i 's/^Components: main$/Components: main contrib non-free non-free-firmware/' \
        /etc/apt/sources.list.d/debian.sources; \
    fi
COPY --from=build /out/runtime-packages /tmp/runtime-packages
# python3 and bubblewrap: the reward sandbox runs user code and code-task tests with them.
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends ca-certificates python3 bubblewrap $(cat /tmp/runtime-packages) \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages
# The non-root user every pod runs as (k8s: runAsUser/runAsGroup/fsGroup 10001).
RUN groupadd --system --gid 10001 zerorl \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/zerorl --shell /usr/sbin/nologin zerorl \
 && mkdir -p /var/lib/zerorl /etc/zerorl && chown 10001:10001 /var/lib/zerorl
COPY --from=build /build/zerorl /build/zerorlctl /usr/local/bin/
# Example configs, reward specs and the countdown checkpoint: relative paths in
# run configs (examples/...) resolve against this working directory.
COPY --from=build /src/examples /opt/zerorl/examples
WORKDIR /opt/zerorl
USER 10001:10001
# Only the GPUs the device plugin assigns are visible (no NVIDIA_VISIBLE_DEVICES=all here).
ENV NVIDIA_DRIVER_CAPABILITIES=compute,utility
EXPOSE 50051 50052 50053 50054 50055 8081
ENTRYPOINT ["/usr/local/bin/zerorl"]
CMD ["--help"]
