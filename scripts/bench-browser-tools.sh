#!/usr/bin/env bash
# Installs what the browser part of `make bench` (bench/lighthouse.py) needs,
# when missing, and says so. Never downloads a browser: Lighthouse and
# Playwright both drive the system Chromium.
#   - Lighthouse 12.2.3 from the npm registry, pinned exactly (`npm i -E`;
#     13.x needs Node 22), into the tools folder:
#     $TOOLS_DIR/lighthouse-12.2.3 (about 110 MB, 15 s)
#   - Playwright (playwright-core, end2end/package-lock.json) into
#     end2end/node_modules with `npm ci`, as end2end/run.sh does
#   - Chromium and Node.js + npm with apt when run as root; otherwise it stops
#     with the exact command to run
# Called by `scripts/ensure-tools.sh --bench` (make bench) and by
# `make bench-browser`; needs no Rust tools.
set -euo pipefail
cd "$(dirname "$0")/.."

LIGHTHOUSE_VERSION=12.2.3
TOOLS_DIR=${LEPTOS_AUTH_TOOLS_DIR:-$HOME/.cache/leptos-auth/tools}
CHROMIUM_PATH=${CHROMIUM_PATH:-/usr/bin/chromium}
say() { printf '==> %s\n' "$*" >&2; }
# shellcheck source=lib/apt.sh
. scripts/lib/apt.sh

missing=()
[ -x "$CHROMIUM_PATH" ] || missing+=(chromium)
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
apt_install "the browser benchmark (Lighthouse and the repeat-visit check)" "${missing[@]}"

prefix="$TOOLS_DIR/lighthouse-$LIGHTHOUSE_VERSION"
if [ ! -x "$prefix/node_modules/.bin/lighthouse" ]; then
  say "installing lighthouse@$LIGHTHOUSE_VERSION (npm, exact) into $prefix (about 110 MB, no browser)"
  mkdir -p "$prefix"
  PUPPETEER_SKIP_DOWNLOAD=1 npm install --silent --no-audit --no-fund --save-exact \
    --prefix "$prefix" "lighthouse@$LIGHTHOUSE_VERSION" >&2
fi

if [ ! -d end2end/node_modules/playwright-core ]; then
  say "installing Playwright into end2end/node_modules (npm ci, no browser download)"
  (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund >&2)
fi
