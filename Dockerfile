# syntax=docker/dockerfile:1
# The Signalman operator image: a static (musl) binary on distroless, run as
# an unprivileged user with nothing else in the image. Built by release CI
# (`docker buildx build --platform linux/amd64,linux/arm64 -t ... .`); there is
# no container engine on the development machines, where `make build` and the
# e2e suite run the same binary as a process instead.

ARG RUST_VERSION=1.95
FROM --platform=$BUILDPLATFORM rust:${RUST_VERSION}-bookworm AS build
ARG TARGETARCH
# musl for a static binary; clang/cmake/perl for ring's and aws-lc's C parts.
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools clang cmake perl \
 && rm -rf /var/lib/apt/lists/*
RUN case "$TARGETARCH" in \
      amd64) echo x86_64-unknown-linux-musl > /rust-target ;; \
      arm64) echo aarch64-unknown-linux-musl > /rust-target ;; \
      *) echo "unsupported TARGETARCH=$TARGETARCH" >&2; exit 1 ;; \
    esac \
 && rustup target add "$(cat /rust-target)"
WORKDIR /src
COPY . .
# Cache the registry and target dir between builds; copy the binary out of
# the cache mount so the next stage can see it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --release -p signalman --bin signalman --target "$(cat /rust-target)" \
 && cp "target/$(cat /rust-target)/release/signalman" /signalman \
 && ! ldd /signalman 2>/dev/null | grep -q '=>'   # static: no shared libraries

# distroless/static: no shell, no package manager, CA certificates and
# /etc/passwd with the `nonroot` user (65532) only.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /signalman /signalman
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/signalman"]
CMD ["run", "--metrics-addr=0.0.0.0:8080"]
