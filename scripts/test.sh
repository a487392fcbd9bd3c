#!/usr/bin/env bash
# Runs the whole suite: unit tests and the integration binary on SQLite and on a private
# PostgreSQL cluster (scripts/with-pg.sh starts and stops it).
set -euo pipefail
cd "$(dirname "$0")/.."

# Benchmarks are compiled (so they cannot rot) but not run: they are measurements, not tests.
# Built in the test profile with the test targets, so every dependency is compiled once.
exec ./scripts/with-pg.sh bash -c \
  'cargo test --lib --bins --tests --benches --no-run --quiet && cargo test --lib --bins --tests -- "$@"' \
  test "$@"
