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
  LEPTOS_SITE_ADDR="127.0.0.1:$port" PUBLIC_URL="$base" DATA_DIR="$work/data" \
  ADMIN_EMAIL="$admin" ADMIN_PASSWORD="$password" \
  "$work/app/leptos-auth" serve) >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do curl -fs "$base/health/ready" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "$base/health/ready" >/dev/null || fail "not ready"

say "pages and assets"
home=$(curl -fs "$base/") || fail "GET /"
grep -q '/pkg/leptos-auth.js' <<<"$home" || fail "the home page does not load the hydration script"
# (Output captured before grep: with pipefail, `curl | grep -q` fails when
# grep stops reading early.)
login_page=$(curl -fs "$base/login") || fail "GET /login"
grep -q '<form' <<<"$login_page" || fail "GET /login has no form"
type=$(curl -fs -o /dev/null -w '%{content_type}' "$base/pkg/leptos-auth.wasm") || fail "GET /pkg/leptos-auth.wasm"
[ "$type" = "application/wasm" ] || fail "wasm served as $type"
curl -fs -o /dev/null "$base/pkg/leptos-auth.css" || fail "GET /pkg/leptos-auth.css"
curl -fs -o /dev/null "$base/docs/swagger-ui-bundle.js" || fail "GET /docs assets"
robots=$(curl -fs "$base/robots.txt") || fail "GET /robots.txt"
grep -qx 'Disallow: /verify-email' <<<"$robots" || fail "robots.txt does not keep crawlers off /verify-email"

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
