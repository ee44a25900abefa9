# Sourced by scripts that need a PostgreSQL server of their own:
#   start_throwaway_pg   initialises and starts a cluster in a new temp dir on a
#                        free port and sets PG_URL (superuser, database postgres)
#   stop_throwaway_pg    stops it and removes the dir (call from an EXIT trap)
# initdb and pg_ctl refuse to run as root; as root they run as `postgres`.

PG_DATA=""
PG_DIR=""
PG_AS=()

start_throwaway_pg() {
  local dir bin port
  bin=$(dirname "$(command -v initdb 2>/dev/null || ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -1)")
  if [ ! -x "$bin/initdb" ]; then
    echo "PostgreSQL server binaries not found (apt-get install postgresql)" >&2
    return 1
  fi
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  dir=$(mktemp -d)
  PG_DIR=$dir
  PG_AS=()
  if [ "$(id -u)" = 0 ]; then chown -R postgres "$dir"; PG_AS=(runuser -u postgres --); fi
  PG_DATA="$dir/data"
  PG_BIN=$bin
  "${PG_AS[@]}" "$bin/initdb" -D "$PG_DATA" -A trust -U postgres --no-sync >/dev/null
  "${PG_AS[@]}" "$bin/pg_ctl" -D "$PG_DATA" -l "$dir/server.log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
  PG_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

stop_throwaway_pg() {
  if [ -n "$PG_DATA" ]; then
    "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DATA" stop -m immediate >/dev/null 2>&1 || true
    PG_DATA=""
  fi
  [ -n "$PG_DIR" ] && rm -rf "$PG_DIR"
  PG_DIR=""
}
