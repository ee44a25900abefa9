#!/usr/bin/env bash
# make budget: fails when the brotli-compressed wasm + js of a built site are
# over the browser-delivery budget (what a cold visit downloads).
#   scripts/check-asset-budget.sh [SITE_DIR]     (default dist/site)
#   ASSET_BUDGET_KIB=150                         the budget, in KiB
# Counts the .br files that `cargo leptos build --release --precompress`
# writes beside each file in SITE_DIR/pkg and each script at the site root
# (/passkeys.js) (any name: hashed ones such as
# leptos-auth.<hash>.wasm.br too, and js snippets in subfolders). Fails when
# a .wasm or .js has no .br. Needs nothing beyond coreutils.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."

site=${1:-dist/site}
budget_kib=${ASSET_BUDGET_KIB:-150}
pkg="$site/pkg"
say() { printf '==> %s\n' "$*" >&2; }

if [ ! -d "$pkg" ]; then
  say "budget: $pkg is missing: build the site first (make dist)"
  exit 1
fi

missing=()
files=()
while IFS= read -r -d '' f; do
  if [ -f "$f.br" ]; then files+=("$f.br"); else missing+=("$f"); fi
done < <({
  find "$pkg" -type f \( -name '*.wasm' -o -name '*.js' -o -name '*.mjs' \) -print0
  # Scripts at the site root too (/passkeys.js, on the pages that offer passkeys).
  find "$site" -maxdepth 1 -type f \( -name '*.js' -o -name '*.mjs' \) -print0
} | sort -z)

if [ "${#files[@]}" -eq 0 ] && [ "${#missing[@]}" -eq 0 ]; then
  say "budget: no .wasm or .js in $pkg"
  exit 1
fi
if [ "${#missing[@]}" -gt 0 ]; then
  say "budget: no brotli file (.br) for:"
  printf '      %s\n' "${missing[@]}" >&2
  say "build with \`cargo leptos build --release --precompress\` (make dist), which writes them"
  exit 1
fi

total=0
say "brotli-compressed wasm + js in $site (pkg/ and the site root; budget $budget_kib KiB):"
for f in "${files[@]}"; do
  size=$(stat -c %s "$f")
  total=$((total + size))
  printf '      %9d bytes  %7.1f KiB  %s\n' "$size" "$(awk "BEGIN { print $size / 1024 }")" "${f#"$site"/}" >&2
done
budget=$((budget_kib * 1024))
summary=$(printf '%d bytes (%.1f KiB) of %d KiB' "$total" "$(awk "BEGIN { print $total / 1024 }")" "$budget_kib")
if [ "$total" -gt "$budget" ]; then
  say "budget: FAILED: wasm + js brotli $summary, $((total - budget)) bytes over"
  exit 1
fi
say "budget: ok: wasm + js brotli $summary"
