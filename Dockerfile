# syntax=docker/dockerfile:1
#
# Board server image:  docker build -t board .
# Used by docker-compose.yml. Needs BuildKit (default since Docker 23) for the
# cache mounts, which keep the cargo registry and target/ between builds.

# ---- build ------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder

# rdkafka builds its bundled librdkafka with ./configure and make (no cmake);
# the image already has gcc, g++, make, perl, pkg-config and zlib1g-dev.
WORKDIR /src

# sqlx's query macros, if used, check against the .sqlx cache instead of a live database.
ENV SQLX_OFFLINE=true \
    CARGO_TERM_COLOR=never

COPY . .

RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin board \
    && install -m 0755 target/release/board /usr/local/bin/board

# ---- runtime ----------------------------------------------------------------
FROM debian:bookworm-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 board \
    && useradd --system --uid 10001 --gid board --home-dir /data --shell /usr/sbin/nologin board \
    && mkdir -p /data/mail \
    && chown -R board:board /data

COPY --from=builder /usr/local/bin/board /usr/local/bin/board

USER board
WORKDIR /data
ENV BOARD_LISTEN=0.0.0.0:8080 \
    MAIL_DIR=/data/mail \
    RUST_LOG=info
EXPOSE 8080
VOLUME ["/data"]

ENTRYPOINT ["/usr/local/bin/board"]
CMD ["serve"]
