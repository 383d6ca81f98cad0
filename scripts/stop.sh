#!/usr/bin/env bash
# Stops what scripts/run.sh started: the control API (gunicorn) and TorchServe.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
if [[ -f instance/gunicorn.pid ]]; then
  kill -TERM "$(cat instance/gunicorn.pid)" 2>/dev/null && echo "Control API stopped."
  rm -f instance/gunicorn.pid
fi
if [[ -d instance/torchserve/tmp ]]; then
  # From TorchServe's cwd, so that --stop removes that instance's key_file.json; --foreground waits for the exit.
  (cd instance/torchserve && TMPDIR="$ROOT/instance/torchserve/tmp" "$ROOT/.venv/bin/torchserve" --stop --foreground)
fi
