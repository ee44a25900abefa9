#!/usr/bin/env bash
# make fuzz-api: validates the OpenAPI spec and runs schemathesis (all checks,
# positive and negative data, stateful links) against a fresh instance.
#   FUZZ_BACKEND=sqlite|postgres   database of the instance (default sqlite)
#   FUZZ_EXAMPLES=N                examples per operation (default 100)
#   FUZZ_SEED=N                    Hypothesis seed (default fixed, reproducible)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
say() { printf '==> %s\n' "$*" >&2; }

BACKEND=${FUZZ_BACKEND:-sqlite}
EXAMPLES=${FUZZ_EXAMPLES:-100}
SEED=${FUZZ_SEED:-20261125}
TOOLS_DIR=${LEPTOS_AUTH_TOOLS_DIR:-$HOME/.cache/leptos-auth/tools}
VENV="$TOOLS_DIR/py"
SCHEMATHESIS_VERSION=4.32.5
VALIDATOR_VERSION=0.7.2

if [ ! -x "$VENV/bin/schemathesis" ] || ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  say "installing schemathesis $SCHEMATHESIS_VERSION and openapi-spec-validator from PyPI into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION" "openapi-spec-validator==$VALIDATOR_VERSION"
fi

target=${CARGO_TARGET_DIR:-target}
case "$target" in /*) ;; *) target="$root/$target" ;; esac
BIN="$target/debug/leptos-auth"
if [ ! -x "$BIN" ]; then
  say "building the server"
  cargo build --features ssr
fi

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
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

case "$BACKEND" in
  sqlite) DATABASE_URL="sqlite://$work/fuzz.db" ;;
  postgres)
    start_throwaway_pg
    DATABASE_URL=$PG_URL
    ;;
  *) echo "FUZZ_BACKEND must be sqlite or postgres" >&2; exit 2 ;;
esac

port=$(free_port)
base="http://127.0.0.1:$port"
ADMIN_EMAIL=fuzz-admin@example.com
ADMIN_PASSWORD="fuzzing admin passphrase orchid"
say "starting the server on $BACKEND at $base"
env DATABASE_URL="$DATABASE_URL" DATA_DIR="$work" LEPTOS_SITE_ADDR="127.0.0.1:$port" \
  JWT_SECRET=fuzz-secret-fuzz-secret-fuzz-secret-0123 ADMIN_EMAIL="$ADMIN_EMAIL" ADMIN_PASSWORD="$ADMIN_PASSWORD" \
  ARGON2_MEMORY_KIB=1024 ARGON2_ITERATIONS=1 RUST_LOG=warn LEPTOS_SITE_ROOT="$root/target/site" \
  LOGIN_MAX_FAILURES=0 LOGIN_IP_MAX_FAILURES_PER_HOUR=0 REGISTRATION_MAX_PER_IP_PER_HOUR=0 \
  REFRESH_IP_MAX_FAILURES_PER_HOUR=0 EMAIL_REQUEST_INTERVAL_SECONDS=0 EMAIL_REQUESTS_PER_IP_PER_HOUR=0 \
  "$BIN" serve >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do curl -fs "$base/health/ready" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "$base/health/ready" >/dev/null || { cat "$work/server.log" >&2; exit 1; }

say "validating the OpenAPI document"
curl -fs "$base/api/v1/openapi.json" -o "$work/openapi.json"
"$VENV/bin/openapi-spec-validator" "$work/openapi.json"

token() {
  curl -fs "$base/api/v1/auth/login" -H 'Content-Type: application/json' \
    -d "{\"email\": \"$1\", \"password\": \"$2\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
ADMIN_TOKEN=$(token "$ADMIN_EMAIL" "$ADMIN_PASSWORD")

common=(--url "$base" --checks all --mode all --max-examples "$EXAMPLES" --seed "$SEED"
  --workers 1 --request-timeout 10 --suppress-health-check all
  --warnings off --continue-on-failure)

# Operations that would end the admin's own session mid-run are fuzzed
# separately with a throwaway user's token.
SESSION_ENDERS='^/api/v1/auth/logout$|^/api/v1/users/me/sessions/\{session_id\}$|^/api/v1/users/\{user_id\}/sessions$'
say "schemathesis: every operation but those ending sessions, as an admin ($EXAMPLES examples each, seed $SEED)"
status=0
"$VENV/bin/schemathesis" --config-file "$root/fuzz/schemathesis.toml" run "$work/openapi.json" "${common[@]}" \
  -H "Authorization: Bearer $ADMIN_TOKEN" --exclude-path-regex "$SESSION_ENDERS" || status=$?

say "schemathesis: operations that end sessions, with a token of their own"
curl -fs "$base/api/v1/users" -H 'Content-Type: application/json' \
  -d '{"email": "fuzz-logout@example.com", "password": "logout fuzzing passphrase tulip"}' >/dev/null
LOGOUT_TOKEN=$(token fuzz-logout@example.com "logout fuzzing passphrase tulip")
"$VENV/bin/schemathesis" --config-file "$root/fuzz/schemathesis.toml" run "$work/openapi.json" "${common[@]}" \
  -H "Authorization: Bearer $LOGOUT_TOKEN" --include-path-regex "$SESSION_ENDERS" || status=$?

if grep -q "panicked\|ERROR" "$work/server.log"; then
  say "the server logged errors:"; grep "panicked\|ERROR" "$work/server.log" | head -20 >&2; status=1
fi
exit $status
