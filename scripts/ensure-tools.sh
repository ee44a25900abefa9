#!/usr/bin/env bash
# Installs the build tools leptos-auth needs when they are missing, and says so.
# Never downloads anything at build or run time beyond the package registries.
#   scripts/ensure-tools.sh            wasm target, cargo-leptos, wasm-bindgen CLI
#   scripts/ensure-tools.sh --release  the above, plus wasm-opt (npm binaryen)
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_LEPTOS_VERSION=0.3.10
BINARYEN_VERSION=132
TOOLS_DIR=${LEPTOS_AUTH_TOOLS_DIR:-$HOME/.cache/leptos-auth/tools}
# The wasm-bindgen CLI must match the wasm-bindgen crate in Cargo.lock exactly.
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)

say() { printf '==> %s\n' "$*" >&2; }

if ! command -v cargo >/dev/null 2>&1; then
  say "cargo is missing: install Rust from https://rustup.rs and run this again"
  exit 1
fi

if command -v rustup >/dev/null 2>&1; then
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    say "installing the wasm32-unknown-unknown Rust target"
    rustup target add wasm32-unknown-unknown
  fi
fi

if [ "$(cargo leptos --version 2>/dev/null || true)" != "cargo-leptos $CARGO_LEPTOS_VERSION" ]; then
  say "installing cargo-leptos $CARGO_LEPTOS_VERSION (takes about 12 minutes on 2 cores, once)"
  # Its release profile asks for fat LTO in one codegen unit: slow to build
  # for a tool that only drives the build. Without them: 12 minutes here.
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked
fi

if [ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $WASM_BINDGEN_VERSION" ]; then
  say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (matches Cargo.lock)"
  # Without --locked: its lockfile pins crates some registries do not serve.
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi

if [ "${1:-}" = "--release" ]; then
  if [ ! -x "$TOOLS_DIR/node_modules/.bin/wasm-opt" ]; then
    if ! command -v npm >/dev/null 2>&1; then
      say "npm is missing: it provides wasm-opt (binaryen) for release builds; install Node.js and npm"
      exit 1
    fi
    say "installing wasm-opt (npm binaryen@$BINARYEN_VERSION) into $TOOLS_DIR"
    mkdir -p "$TOOLS_DIR"
    npm install --silent --no-audit --no-fund --prefix "$TOOLS_DIR" "binaryen@$BINARYEN_VERSION" >&2
  fi
fi

# Swagger UI assets for /docs (npm registry, pinned, cached).
./scripts/docs-assets.sh
