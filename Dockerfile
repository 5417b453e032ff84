# syntax=docker/dockerfile:1
# Multi-stage: a full Rust toolchain builds the binary (SQLite is compiled in,
# PostgreSQL is spoken in pure Rust, so the runtime needs no C libraries).
FROM rust:1-bookworm AS build
WORKDIR /src
# Everything the manifest names: the library and binary, the migrations and
# the console's files (web/) it embeds, and the benchmark target it declares (cargo refuses a manifest
# whose targets are missing). tests/dockerfile.rs builds exactly this.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY web ./web
COPY benches ./benches
RUN cargo build --release --locked \
 && strip target/release/threatwatch

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --user-group \
      --home-dir /var/lib/threatwatch --create-home threatwatch
COPY --from=build /src/target/release/threatwatch /usr/local/bin/threatwatch
USER 10001:10001
WORKDIR /var/lib/threatwatch
ENV THREATWATCH_BIND=0.0.0.0:8000 \
    DATABASE_URL=sqlite:///var/lib/threatwatch/threatwatch.db \
    THREATWATCH_LOG_FORMAT=json
EXPOSE 8000
# The image has no curl: the binary asks its own /readyz.
HEALTHCHECK --interval=15s --timeout=6s --start-period=30s --retries=3 \
  CMD ["threatwatch", "healthcheck"]
VOLUME ["/var/lib/threatwatch"]
ENTRYPOINT ["threatwatch"]
CMD ["serve"]
