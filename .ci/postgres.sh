#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster for the test suite and print how to reach it.
#
#   eval "$(.ci/postgres.sh)"        # -> export TEST_DATABASE_URL=postgresql://...
#   .ci/postgres.sh stop             # stop it again
#
# Installs PostgreSQL with apt-get when initdb is missing (clean Debian/Ubuntu), then
# runs a cluster in $PG_CI_DIR (default: $TMPDIR/ci-postgres) on a free local port,
# trust auth, listening on 127.0.0.1 only. Idempotent: when that cluster is already
# running it just prints its URL again. Everything but the export line goes to stderr.
# PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres` user.
set -euo pipefail

CI_DIR="${PG_CI_DIR:-${TMPDIR:-/tmp}/ci-postgres}"
DATA_DIR="$CI_DIR/data"
PORT_FILE="$CI_DIR/port"

log() { echo "postgres.sh: $*" >&2; }

find_bindir() {
  local candidate
  if [ -n "${PG_BINDIR:-}" ] && [ -x "$PG_BINDIR/initdb" ]; then echo "$PG_BINDIR"; return 0; fi
  if command -v initdb >/dev/null 2>&1; then dirname "$(readlink -f "$(command -v initdb)")"; return 0; fi
  # Debian keeps the server programs off PATH, one directory per major version
  for candidate in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n -r); do
    if [ -x "$candidate/initdb" ]; then echo "$candidate"; return 0; fi
  done
  return 1
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

as_server_user() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

install_postgres() {
  log "initdb not found: installing postgresql with apt-get"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    postgresql >&2
}

port_is_free() {
  # bash's /dev/tcp connects: success means something is listening
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

is_running() {
  [ -f "$DATA_DIR/PG_VERSION" ] && as_server_user "$BINDIR/pg_ctl" -D "$DATA_DIR" status >/dev/null 2>&1
}

print_url() {
  echo "export TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:$(cat "$PORT_FILE")/postgres"
}

BINDIR="$(find_bindir)" || { install_postgres; BINDIR="$(find_bindir)"; } || {
  log "PostgreSQL is still not installed"; exit 1; }

if [ "${1:-start}" = "stop" ]; then
  if is_running; then as_server_user "$BINDIR/pg_ctl" -D "$DATA_DIR" -m fast -w stop >&2; fi
  exit 0
fi

if is_running && [ -f "$PORT_FILE" ]; then
  log "already running on port $(cat "$PORT_FILE")"
  print_url
  exit 0
fi

mkdir -p "$CI_DIR"
if [ "$(id -u)" -eq 0 ]; then chown postgres: "$CI_DIR"; fi
if [ ! -f "$DATA_DIR/PG_VERSION" ]; then
  as_server_user "$BINDIR/initdb" -D "$DATA_DIR" -A trust -U postgres -E UTF8 --locale=C \
    --no-sync >/dev/null
fi

for attempt in 1 2 3 4 5 6 7 8 9 10; do
  port=$(( 20000 + RANDOM % 40000 ))
  port_is_free "$port" || continue
  # -F: no fsync, the data is disposable; the socket lives in our dir, not /var/run
  if as_server_user "$BINDIR/pg_ctl" -D "$DATA_DIR" -l "$CI_DIR/server.log" -w -t 60 \
       -o "-p $port -k $CI_DIR -c listen_addresses=127.0.0.1 -F -c max_connections=200" \
       start >&2; then
    echo "$port" > "$PORT_FILE"
    log "PostgreSQL $("$BINDIR/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
    print_url
    exit 0
  fi
  log "start on port $port failed (attempt $attempt)"
done
log "could not start PostgreSQL; server log follows"
tail -n 50 "$CI_DIR/server.log" >&2 || true
exit 1
