#!/usr/bin/env bash
# Stops what scripts/run.sh started: the control API (gunicorn) and TorchServe; with INSTANCE_PATH (and
# API_PIDFILE) as run.sh was given them, the copy that runs there.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
INSTANCE=${INSTANCE_PATH:-$ROOT/instance}
API_PIDFILE=${API_PIDFILE:-$INSTANCE/gunicorn.pid}
mkdir -p "$INSTANCE"
# `make stop` and run.sh's own exit trap can both get here: one at a time.
exec 9>"$INSTANCE/.stop.lock"
flock 9
if [[ -f "$API_PIDFILE" ]]; then
  kill -TERM "$(cat "$API_PIDFILE")" 2>/dev/null && echo "Control API stopped."
  rm -f "$API_PIDFILE"
fi
# The supervisor first, or it would start TorchServe again; it stops TorchServe's process group itself.
if [[ -f "$INSTANCE/torchserve.supervisor.pid" ]]; then
  supervisor=$(cat "$INSTANCE/torchserve.supervisor.pid")
  if kill -TERM "$supervisor" 2>/dev/null; then
    for _ in $(seq 1 60); do kill -0 "$supervisor" 2>/dev/null || break; sleep 0.5; done
    echo "TorchServe stopped."
  fi
  rm -f "$INSTANCE/torchserve.supervisor.pid"
fi
TS_HOME=$INSTANCE/torchserve
if [[ -f "$TS_HOME/tmp/.model_server.pid" ]] && kill -0 "$(cat "$TS_HOME/tmp/.model_server.pid")" 2>/dev/null; then
  # From TorchServe's cwd, so that --stop removes that instance's key_file.json; --foreground waits for the exit.
  (cd "$TS_HOME" && TMPDIR="$TS_HOME/tmp" "$ROOT/.venv/bin/torchserve" --stop --foreground)
fi
