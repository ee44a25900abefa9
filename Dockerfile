# syntax=docker/dockerfile:1
# Build stage: the tools .ci/run installs (the wasm target, cargo-leptos
# 0.3.10, the matching wasm-bindgen CLI, wasm-opt from the npm package
# binaryen), then `make dist`: the optimised binary and the site folder.
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
RUN make dist TOOLS_DIR=/opt/leptos-auth-tools

# Runtime stage: only dist/ (binary, site, hash file), as a non-root user.
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin leptos-auth
WORKDIR /app
# dist/ whole: the binary, site/ (each file with its .br and .gz), and
# hash.txt when the build hashes its file names: the server reads it beside
# itself to link the hashed names and to serve them as immutable.
COPY --from=build /app/dist/ /app/
RUN mkdir -p /app/data && chown leptos-auth /app/data
USER leptos-auth
ENV APP_ENV=production \
    LEPTOS_SITE_ADDR=0.0.0.0:3000 \
    LEPTOS_SITE_ROOT=/app/site \
    DATA_DIR=/app/data \
    RUST_LOG=info
# The SQLite database (when DATABASE_URL is not PostgreSQL) lives here.
VOLUME ["/app/data"]
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS http://127.0.0.1:3000/health/ready || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["/app/leptos-auth"]
CMD ["serve"]
