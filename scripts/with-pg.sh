#!/usr/bin/env bash
# Runs a command with a private, throwaway PostgreSQL cluster (started here, stopped on exit)
# and HEARTH_TEST_PG_URL naming it. Used by the tests and the benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_PORT="${HEARTH_TEST_PG_PORT:-55432}"
PG_DIR="${HEARTH_TEST_PG_DIR:-/tmp/hearth-test-pg-$PG_PORT}"
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$PG_BIN/initdb" ] || { echo "with-pg: PostgreSQL server binaries not found; run scripts/setup.sh --with-postgres" >&2; exit 1; }

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

stop_pg() { as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR" -m fast stop >/dev/null 2>&1 || true; }

stop_pg
rm -rf "$PG_DIR"
mkdir -p "$PG_DIR"
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$PG_DIR"
as_pg "$PG_BIN/initdb" -D "$PG_DIR" -A trust -U hearth --no-sync >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR" -l "$PG_DIR/server.log" -w \
  -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400" \
  start >/dev/null
trap stop_pg EXIT
echo "with-pg: PostgreSQL $(basename "$(dirname "$PG_BIN")") on 127.0.0.1:$PG_PORT" >&2

export HEARTH_TEST_PG_URL="postgres://hearth@127.0.0.1:$PG_PORT/postgres"
"$@"
