#!/usr/bin/env bash
# The history-purge service of docker-compose.yml: `flask --app control_api purge-history` (rows older
# than HISTORY_RETENTION_DAYS, in short batches) every PURGE_INTERVAL_SECONDS (3600), touching
# /tmp/purge.ok after each run that succeeded, which the service's healthcheck reads.
set -uo pipefail
cd "$(dirname "$0")/.."

while true; do
  if flask --app control_api purge-history; then
    touch /tmp/purge.ok
  else
    echo "purge-history failed; next try in ${PURGE_INTERVAL_SECONDS:-3600}s" >&2
  fi
  sleep "${PURGE_INTERVAL_SECONDS:-3600}"
done
