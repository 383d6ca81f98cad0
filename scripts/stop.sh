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
  TMPDIR="$ROOT/instance/torchserve/tmp" .venv/bin/torchserve --stop
fi
