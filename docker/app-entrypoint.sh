#!/bin/sh
# Entry point of the lab image (app, upstream, Locust): prepares what the
# command needs, then runs it as PID 1.
set -eu

# Multiprocess metrics: every gunicorn worker writes its files here; stale
# files of a previous container run would be counted as live workers.
if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
  rm -rf "$PROMETHEUS_MULTIPROC_DIR"
  mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
fi

# The app migrates and seeds its database (directly, not through Toxiproxy)
# before serving; `lab seed` keeps an already seeded database.
if [ "${LAB_SEED:-0}" = "1" ]; then
  lab seed --rows "${LAB_SEED_ROWS:-10000}" --database-url "${DATABASE_DIRECT_URL:-$DATABASE_URL}"
fi

exec "$@"
