# syntax=docker/dockerfile:1
# Build stage: the same tools .ci/run installs, then an optimised build.
FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY scripts scripts
COPY Cargo.toml Cargo.lock ./
ENV LEPTOS_AUTH_TOOLS_DIR=/opt/leptos-auth-tools \
    PATH=/opt/leptos-auth-tools/node_modules/.bin:$PATH
RUN ./scripts/ensure-tools.sh --release
COPY . .
RUN cargo leptos build --release

# Runtime stage: only the binary and the site folder, as a non-root user.
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin leptos-auth
WORKDIR /app
COPY --from=build /app/target/release/leptos-auth /app/leptos-auth
COPY --from=build /app/target/site /app/site
RUN mkdir -p /app/data && chown leptos-auth /app/data
USER leptos-auth
ENV APP_ENV=production \
    LEPTOS_SITE_ADDR=0.0.0.0:3000 \
    LEPTOS_SITE_ROOT=/app/site \
    DATA_DIR=/app/data \
    RUST_LOG=info
VOLUME ["/app/data"]
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS http://127.0.0.1:3000/health/ready || exit 1
ENTRYPOINT ["/app/leptos-auth"]
CMD ["serve"]
