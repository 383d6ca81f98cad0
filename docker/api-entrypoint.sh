#!/usr/bin/env bash
# Entry point of the api image (docker/api.Dockerfile): refuse CHANGE_ME placeholders, then hand over to
# scripts/boot.sh, which runs `flask db upgrade` once (retrying for DB_WAIT_SECONDS while PostgreSQL comes
# up) and execs gunicorn, so workers never race each other on the schema.
set -euo pipefail

# The same check as the postgres and grafana containers get (docker-compose.yml mounts it there).
if [[ "${1:-}" != "--checked" ]]; then
  exec /bin/sh /opt/deploy/refuse-placeholders.sh "$0" --checked "$@"
fi
shift

cd /app
exec bash scripts/boot.sh "$@"
