# Build: the vendored protoc means nothing beyond the Rust image is needed.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin watchtower

FROM debian:bookworm-slim
COPY --from=build /src/target/release/watchtower /usr/local/bin/watchtower
EXPOSE 50051 8765
# Listen on all interfaces inside the container; publish the port to choose
# who can reach it.
ENV WATCHTOWER_LISTEN=0.0.0.0:50051 \
    WATCHTOWER_LEGACY_WS_LISTEN=0.0.0.0:8765 \
    WATCHTOWER_DATA_DIR=/data
# Every run is recorded here (docs/durability.md); mount a volume to keep it.
VOLUME /data
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/watchtower"]
