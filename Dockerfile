# Watchtower's image: a multi-stage build whose dependency layer is cached
# (cargo-chef cooks the dependencies from a recipe of the manifests, so a
# source change rebuilds only the watchtower crate), then a slim runtime that
# runs as a non-root user, with a health check through the binary itself.
# The vendored protoc and the committed web/dist mean the build needs nothing
# beyond the Rust image and make.

FROM rust:1.95.0-slim-bookworm AS chef
WORKDIR /src
# make builds jemalloc, the binary's allocator (the slim image has only gcc).
RUN apt-get update \
    && apt-get install -y --no-install-recommends make=4.3-4.1 \
    && rm -rf /var/lib/apt/lists/*
RUN cargo install cargo-chef --version 0.1.78 --locked

# The recipe: the manifests and lock file only, so it changes when they do.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS build
COPY --from=planner /src/recipe.json recipe.json
# The build flags (tokio_unstable) apply to the dependencies too.
COPY .cargo .cargo
RUN cargo chef cook --release --locked --recipe-path recipe.json --bin watchtower
COPY . .
RUN cargo build --release --locked --bin watchtower

FROM debian:12.13-slim
# A fixed, unprivileged user that owns the data directory and nothing else.
RUN groupadd --system --gid 10001 watchtower \
    && useradd --system --uid 10001 --gid watchtower --home-dir /data --shell /usr/sbin/nologin watchtower \
    && mkdir -p /data \
    && chown watchtower:watchtower /data
COPY --from=build /src/target/release/watchtower /usr/local/bin/watchtower
# Listen on all interfaces inside the container; publish the ports to choose
# who can reach them. WATCHTOWER_DATA_DIR is where recorded runs go (the
# durability work reads it); /data is a volume so they outlive the container.
ENV WATCHTOWER_LISTEN=0.0.0.0:50051 \
    WATCHTOWER_LEGACY_WS_LISTEN=0.0.0.0:8765 \
    WATCHTOWER_DATA_DIR=/data
# Every run is recorded here (docs/durability.md); mount a volume to keep it.
VOLUME ["/data"]
WORKDIR /data
USER 10001:10001
EXPOSE 50051 8765
# SERVING once the engine has ticked; `healthcheck` asks WATCHTOWER_LISTEN
# (0.0.0.0 becomes loopback) and gives up after 3 s itself.
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/watchtower", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/watchtower"]
