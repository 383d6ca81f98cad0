#!/bin/sh
# Refuses to start a container while its environment still holds a CHANGE_ME placeholder copied from
# .env.example, then runs the real entry point: `refuse-placeholders.sh COMMAND [ARGS...]`.
# POSIX sh: docker-compose.yml also mounts it into the upstream postgres and grafana (Alpine) images.
set -eu
names=$(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*CHANGE_ME.*$/\1/p' | sort -u | tr '\n' ' ')
if [ -n "$names" ]; then
  echo "error: still the CHANGE_ME placeholder from .env.example: ${names}" >&2
  echo "       Put real values in .env, e.g.: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'" >&2
  exit 78  # EX_CONFIG
fi
[ "$#" -gt 0 ] || { echo "usage: $0 COMMAND [ARGS...]" >&2; exit 64; }
exec "$@"
