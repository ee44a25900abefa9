#!/usr/bin/env bash
# Installs the build tools leptos-auth needs when they are missing, and says so.
# Never downloads anything at build or run time beyond the package registries.
#   scripts/ensure-tools.sh            wasm target, cargo-leptos, wasm-bindgen CLI
#   scripts/ensure-tools.sh --release  the above, plus wasm-opt (npm binaryen)
#   scripts/ensure-tools.sh --bench    --release, plus what the browser part of
#                                      `make bench` needs (scripts/bench-browser-tools.sh:
#                                      Lighthouse 12.2.3 from npm into the tools
#                                      folder, Playwright into end2end/node_modules,
#                                      Chromium and npm with apt; never a browser download)
#   scripts/ensure-tools.sh --test     --release, plus the system packages the
#                                      tests need: PostgreSQL server binaries,
#                                      Chromium, Node.js + npm, Python venv, a C
#                                      compiler. With apt as root; otherwise it
#                                      stops with the exact command to run.
# (npm and PyPI tools, Playwright and schemathesis, are installed by the
# scripts that use them: end2end/run.sh, scripts/fuzz-api.sh.)
set -euo pipefail
cd "$(dirname "$0")/.."

release=0
test_packages=0
bench=0
for arg in "$@"; do
  case "$arg" in
    --release) release=1 ;;
    --bench) bench=1; release=1 ;;
    --test) test_packages=1; release=1 ;;
    *) echo "ensure-tools.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

CARGO_LEPTOS_VERSION=0.3.10
BINARYEN_VERSION=132
TOOLS_DIR=${LEPTOS_AUTH_TOOLS_DIR:-$HOME/.cache/leptos-auth/tools}
# The wasm-bindgen CLI must match the wasm-bindgen crate in Cargo.lock exactly.
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)

say() { printf '==> %s\n' "$*" >&2; }
# shellcheck source=lib/apt.sh
. scripts/lib/apt.sh

# System packages first: the Rust tools below need a C compiler, and the
# release tools need npm.
if [ "$test_packages" = 1 ]; then
  missing=()
  if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    missing+=(postgresql)
  fi
  [ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ] || missing+=(chromium)
  command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
  python3 -m venv --help >/dev/null 2>&1 || missing+=(python3 python3-venv python3-pip)
  command -v cc >/dev/null 2>&1 || missing+=(build-essential)
  apt_install "the tests (PostgreSQL server binaries, Chromium and the rest they need)" "${missing[@]}"
fi

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
  say "installing cargo-leptos $CARGO_LEPTOS_VERSION (takes 13 to 15 minutes on 2 cores, once)"
  # Its release profile asks for fat LTO in one codegen unit: slow to build
  # for a tool that only drives the build. Without them: 13 min 45 s on 2 cores;
  # an unoptimised build (`cargo install --debug`) took 15 min 25 s (with
  # another build sharing the cores): no faster, and a 626 MB binary.
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked
fi

if [ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $WASM_BINDGEN_VERSION" ]; then
  say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (matches Cargo.lock)"
  # Without --locked: its lockfile pins crates some registries do not serve.
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi

if [ "$release" = 1 ]; then
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

if [ "$bench" = 1 ]; then
  ./scripts/bench-browser-tools.sh
fi

# Swagger UI assets for /docs (npm registry, pinned, cached).
./scripts/docs-assets.sh
