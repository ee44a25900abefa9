#!/usr/bin/env bash
# Runs the browser tests: Playwright drives the system Chromium against the
# built server (`cargo leptos build` first), started on a fresh SQLite file.
# Extra arguments go to `playwright test` (e.g. a file name or --headed).
# The server's environment is in playwright.config.ts (webServer.env): sign-up
# throttling off (REGISTRATION_MAX_PER_IP_PER_HOUR=0, the suite signs many
# accounts up from 127.0.0.1), sign-in throttling at its defaults.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/end2end"

target=${CARGO_TARGET_DIR:-target}
case "$target" in /*) ;; *) target="$root/$target" ;; esac
export E2E_SERVER_BIN="$target/debug/leptos-auth"
export E2E_SITE_ROOT="$root/target/site"
export CHROMIUM_PATH=${CHROMIUM_PATH:-/usr/bin/chromium}

if [ ! -x "$E2E_SERVER_BIN" ] || [ ! -d "$E2E_SITE_ROOT/pkg" ]; then
  echo "end2end: build the app first (cargo leptos build): $E2E_SERVER_BIN or $E2E_SITE_ROOT/pkg is missing" >&2
  exit 1
fi
if [ ! -x "$CHROMIUM_PATH" ]; then
  echo "end2end: Chromium not found at $CHROMIUM_PATH (Debian: apt-get install chromium)" >&2
  exit 1
fi
if [ ! -d node_modules/@playwright/test ]; then
  echo "==> installing Playwright from the npm registry (no browser download)" >&2
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund >&2
fi

E2E_DATA_DIR=$(mktemp -d)
export E2E_DATA_DIR
trap 'rm -rf "$E2E_DATA_DIR"' EXIT
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npx playwright test "$@"
