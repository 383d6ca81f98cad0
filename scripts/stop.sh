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
if [[ -f instance/torchserve/tmp/.model_server.pid ]]; then
  # From TorchServe's cwd, so that --stop removes that instance's key_file.json; --foreground waits for the exit.
  (cd instance/torchserve && TMPDIR="$ROOT/instance/torchserve/tmp" "$ROOT/.venv/bin/torchserve" --stop --foreground)
fi
