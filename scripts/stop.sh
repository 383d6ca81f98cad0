#!/usr/bin/env bash
# Stops what scripts/run.sh started: the control API (gunicorn) and TorchServe.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
mkdir -p instance
# `make stop` and run.sh's own exit trap can both get here: one at a time.
exec 9>instance/.stop.lock
flock 9
if [[ -f instance/gunicorn.pid ]]; then
  kill -TERM "$(cat instance/gunicorn.pid)" 2>/dev/null && echo "Control API stopped."
  rm -f instance/gunicorn.pid
fi
# The supervisor first, or it would start TorchServe again; it stops TorchServe's process group itself.
if [[ -f instance/torchserve.supervisor.pid ]]; then
  supervisor=$(cat instance/torchserve.supervisor.pid)
  if kill -TERM "$supervisor" 2>/dev/null; then
    for _ in $(seq 1 60); do kill -0 "$supervisor" 2>/dev/null || break; sleep 0.5; done
    echo "TorchServe stopped."
  fi
  rm -f instance/torchserve.supervisor.pid
fi
if [[ -f instance/torchserve/tmp/.model_server.pid ]] && kill -0 "$(cat instance/torchserve/tmp/.model_server.pid)" 2>/dev/null; then
  # From TorchServe's cwd, so that --stop removes that instance's key_file.json; --foreground waits for the exit.
  (cd instance/torchserve && TMPDIR="$ROOT/instance/torchserve/tmp" "$ROOT/.venv/bin/torchserve" --stop --foreground)
fi
