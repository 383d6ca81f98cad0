#!/bin/sh
# Entry point of the prometheus service (docker-compose.yml): the api's /metrics needs METRICS_TOKEN, and
# Prometheus reads credentials from files only, so write it to /run/prometheus (a tmpfs, mode 700, owned by
# the container's user) and hand over to Prometheus with the arguments given.
set -eu
case "${METRICS_TOKEN:-}" in
  "" | *CHANGE_ME*)
    echo "error: METRICS_TOKEN is not set (or still CHANGE_ME); see .env.example" >&2
    exit 1
    ;;
esac
umask 077
printf '%s' "$METRICS_TOKEN" > /run/prometheus/metrics_token
exec /bin/prometheus "$@"
