#!/usr/bin/env bash
# make test-dist: starts the `make dist` artefact the way the container image
# runs it (production settings, PostgreSQL, no source tree, another working
# directory) and checks that the pages, their assets and the API answer.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
say() { printf '==> %s\n' "$*" >&2; }
fail() { say "FAILED: $*"; [ -f "$work/server.log" ] && tail -n 40 "$work/server.log" >&2; exit 1; }

dist="$root/dist"
[ -x "$dist/leptos-auth" ] && [ -d "$dist/site/pkg" ] || { echo "dist/ is missing: run make dist" >&2; exit 1; }

work=$(mktemp -d)
server_pid=""
# shellcheck source=lib/throwaway-pg.sh
. "$root/scripts/lib/throwaway-pg.sh"
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  stop_throwaway_pg
  rm -rf "$work"
}
trap cleanup EXIT

start_throwaway_pg
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
admin=dist-admin@example.com
password="dist admin passphrase lantern"

# Only the artefact: copy it out of the source tree, run it from elsewhere.
cp -r "$dist" "$work/app"
mkdir -p "$work/cwd"
say "starting dist/leptos-auth (production settings, PostgreSQL) at $base"
(cd "$work/cwd" && exec env -i PATH="$PATH" APP_ENV=production \
  DATABASE_URL="$PG_URL" JWT_SECRET=dist-test-secret-dist-test-secret-0123456789 \
  DATA_ENCRYPTION_KEY=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff \
  LEPTOS_SITE_ADDR="127.0.0.1:$port" PUBLIC_URL="$base" DATA_DIR="$work/data" \
  ADMIN_EMAIL="$admin" ADMIN_PASSWORD="$password" \
  "$work/app/leptos-auth" serve) >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do curl -fs "$base/health/ready" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "$base/health/ready" >/dev/null || fail "not ready"

say "pages and assets"
home=$(curl -fs "$base/") || fail "GET /"
# The names the page links (hashed when the build hashes them).
wasm=$(grep -o '/pkg/leptos-auth[^"]*\.wasm' <<<"$home" | head -n 1) || true
js=$(grep -o '/pkg/leptos-auth[^"]*\.js' <<<"$home" | head -n 1) || true
css=$(grep -o '/pkg/leptos-auth[^"]*\.css' <<<"$home" | head -n 1) || true
[ -n "$wasm" ] && [ -n "$js" ] && [ -n "$css" ] || fail "the home page does not link the wasm, the hydration script and the stylesheet"
# (Output captured before grep: with pipefail, `curl | grep -q` fails when
# grep stops reading early.)
login_page=$(curl -fs "$base/login") || fail "GET /login"
grep -q '<form' <<<"$login_page" || fail "GET /login has no form"
curl -fs -o /dev/null "$base$js" || fail "GET $js"
curl -fs -o /dev/null "$base$css" || fail "GET $css"
curl -fs -o /dev/null "$base/docs/swagger-ui-bundle.js" || fail "GET /docs assets"
robots=$(curl -fs "$base/robots.txt") || fail "GET /robots.txt"
grep -qx 'Disallow: /verify-email' <<<"$robots" || fail "robots.txt does not keep crawlers off /verify-email"
curl -fs -o /dev/null "$base/favicon.svg" || fail "GET /favicon.svg"

say "asset delivery: precompressed, cached by name"
# `make dist` builds with --precompress: the wasm goes out as its .br.
header() {
  awk -v name="$1" 'tolower($0) ~ "^" name ":" { sub(/^[^:]*: */, ""); sub(/\r$/, ""); print; exit }' "$work/headers"
}
sent=$(curl -fs -D "$work/headers" -o "$work/wasm.br" -w '%{size_download}' \
  -H 'Accept-Encoding: br, gzip' "$base$wasm") || fail "GET $wasm"
[ "$(header content-type)" = "application/wasm" ] || fail "$wasm served as $(header content-type)"
[ "$(header content-encoding)" = "br" ] || fail "$wasm not sent brotli-compressed (content-encoding: $(header content-encoding))"
header vary | grep -qi 'accept-encoding' || fail "$wasm has no Vary: Accept-Encoding"
[ -f "$dist/site$wasm.br" ] && cmp -s "$work/wasm.br" "$dist/site$wasm.br" || fail "$wasm: not the precompressed file of the build"
raw=$(stat -c %s "$dist/site$wasm")
say "$wasm: $sent bytes sent for $raw"
hashed=""
for file in "$dist"/site/pkg/leptos-auth.*.wasm; do
  if [[ $(basename "$file") =~ ^leptos-auth\.[A-Za-z0-9_-]{22}\.wasm$ ]]; then hashed=yes; fi
done
if [ -n "$hashed" ]; then
  # A hashing build: the server links the names from dist/hash.txt and
  # promises they never change.
  [ -f "$dist/hash.txt" ] || fail "the site has hashed names but dist/ has no hash.txt"
  grep -Eq '^/pkg/leptos-auth\.[A-Za-z0-9_-]{22}\.wasm$' <<<"$wasm" || fail "the page links $wasm, not the hashed name"
  [ "$(header cache-control)" = "public, max-age=31536000, immutable" ] \
    || fail "$wasm: cache-control is '$(header cache-control)', not immutable"
else
  say "the build does not hash its file names: assets revalidate"
  [ "$(header cache-control)" = "no-cache" ] || fail "$wasm: cache-control is '$(header cache-control)'"
fi
# The site-root files are fresh for a day; a revalidation of an unchanged
# file downloads nothing.
curl -fs -D "$work/headers" -o /dev/null "$base/favicon.svg" || fail "GET /favicon.svg"
[ "$(header cache-control)" = "public, max-age=86400" ] || fail "/favicon.svg: cache-control is '$(header cache-control)'"
stamp=$(header last-modified)
status=$(curl -s -o /dev/null -w '%{http_code}' -H "If-Modified-Since: $stamp" "$base/favicon.svg")
[ "$status" = 304 ] || fail "/favicon.svg revalidated with $status, not 304"
status=$(curl -s -o /dev/null -w '%{http_code}' "$base/pkg/no-such-file.wasm")
[ "$status" = 404 ] || fail "a missing asset answered $status"
# Pages are compressed per response.
curl -fs -D "$work/headers" -o /dev/null -H 'Accept-Encoding: br, gzip' "$base/login" || fail "GET /login (br)"
[ "$(header content-encoding)" = "br" ] || fail "GET /login not compressed (content-encoding: $(header content-encoding))"
[ "$(header cache-control)" = "no-store" ] || fail "GET /login: cache-control is '$(header cache-control)'"

say "API"
tokens=$(curl -fs "$base/api/v1/auth/login" -d "username=$admin&password=$password") || fail "admin login"
access=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' <<<"$tokens")
me=$(curl -fs "$base/api/v1/users/me" -H "Authorization: Bearer $access") || fail "GET /api/v1/users/me"
grep -q "\"$admin\"" <<<"$me" || fail "GET /api/v1/users/me is not the admin"
spec=$(curl -fs "$base/api/v1/openapi.json") || fail "GET /api/v1/openapi.json"
grep -q '"openapi"' <<<"$spec" || fail "the OpenAPI document has no version"

say "graceful stop"
kill -TERM "$server_pid"
wait "$server_pid" || fail "exit status $? after SIGTERM"
server_pid=""
say "dist works from another working directory on PostgreSQL"
