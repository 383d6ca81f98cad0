#!/usr/bin/env bash
# Entry point of the torchserve image (docker/torchserve.Dockerfile). Runs as the unprivileged
# model-server user, under docker-compose's `init: true` (tini reaps the worker processes).
#  1. Narrows the CPU affinity to the container's CPU quota (see docker/cpu_quota.py).
#  2. Starts TorchServe in the foreground with cwd = the key volume, so key_file.json (mode 600) lands
#     where the api (same UID, read-only mount) reads it; SIGTERM stops it cleanly via `torchserve --stop`.
# The model store is read-only here: the model-store-init service (docker/model_store_init.py) installs the
# archives baked into the image before this starts, and the api writes admins' uploads. TorchServe only
# reads an archive, extracting it under TEMP when it registers it.
set -euo pipefail

# The image's layout; the overrides exist so the script can be exercised outside a container.
TS_HOME=${MODEL_SERVER_HOME:-/home/model-server}
KEYS_DIR=$TS_HOME/keys
MODEL_STORE=$TS_HOME/model-store
CONFIG=${TORCHSERVE_CONFIG:-/etc/torchserve/config.properties}
DEPLOY_DIR=${DEPLOY_DIR:-/opt/deploy}

log() { echo "[entrypoint] $*"; }

pin_to_cpu_quota() {
  local cpus
  cpus=$(python "$DEPLOY_DIR/cpu_quota.py" || true)
  [[ -n "$cpus" ]] || return 0
  if taskset -pc "$cpus" $$ >/dev/null; then
    log "the CPU quota is below the visible CPUs: pinned to CPUs $cpus so thread pools match the limit"
  else
    log "warning: could not pin to CPUs $cpus; torch may start more threads than the CPU limit allows"
  fi
}

pin_to_cpu_quota
ls -l "$MODEL_STORE"/*.mar 2>/dev/null || log "warning: no archive in $MODEL_STORE"

mkdir -p "$TMPDIR" "$LOG_LOCATION"
cd "$KEYS_DIR"
# Leftovers of a container that was killed: keys that no longer work and a pid file that may point
# at a recycled pid.
rm -f key_file.json "$TMPDIR/.model_server.pid"

torchserve --start --foreground --ncs --ts-config "$CONFIG" --model-store "$MODEL_STORE" &
launcher=$!

# `torchserve --stop` sends SIGTERM to the Java frontend (which stops its Python workers) and deletes
# key_file.json from the cwd; the launcher then returns.
trap 'log "stopping TorchServe"; torchserve --stop || true' TERM INT

set +e
wait "$launcher"
status=$?
while kill -0 "$launcher" 2>/dev/null; do  # a trapped signal interrupts `wait`: wait for the real exit
  wait "$launcher"
  status=$?
done
exit "$status"
