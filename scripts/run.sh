#!/usr/bin/env bash
# Starts TorchServe and the control API on their embedded defaults, in the foreground.
# TorchServe runs under launcher.supervise: if it dies it is started again (like compose's restart policy)
# while the API keeps answering (503 in between). Ctrl-C, or `make stop` from another shell, stops both.
# Logs go under logs/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=$ROOT/.venv/bin
TS_HOME=$ROOT/instance/torchserve   # TorchServe's cwd: its key_file.json lands here
mkdir -p "$TS_HOME/tmp" logs/torchserve

scripts/init_secrets.sh
# The environment wins over the generated file: export only what is still unset.
while IFS='=' read -r name value; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  [[ -z "${!name:-}" ]] && export "$name=$value"
done < instance/secrets.env

export TORCHSERVE_KEY_FILE="${TORCHSERVE_KEY_FILE:-$TS_HOME/key_file.json}"

stop_all() {
  trap - INT TERM EXIT
  echo "Stopping..."
  scripts/stop.sh || true
}
trap stop_all INT TERM EXIT

echo "Starting TorchServe (logs/torchserve/)..."
rm -f "$TS_HOME/key_file.json"
# TMPDIR (pid file) and TEMP (worker sockets, unpacked archives) are per instance, so that a test run's
# TorchServe never clashes with this one. It writes a fresh key_file.json at each start; the API re-reads it.
TMPDIR="$TS_HOME/tmp" TEMP="$TS_HOME/tmp" LOG_LOCATION="$ROOT/logs/torchserve" \
  METRICS_LOCATION="$ROOT/logs/torchserve" "$BIN/python" -m launcher.supervise --name TorchServe \
  --cwd "$TS_HOME" --pidfile "$ROOT/instance/torchserve.supervisor.pid" \
  -- "$BIN/torchserve" --start --foreground --ncs --ts-config "$ROOT/config.properties" \
  --model-store "$ROOT/model_store" >>logs/torchserve/console.log 2>&1 &

# /ping needs the inference key and says Healthy before the worker is up: wait for a READY worker instead.
model_ready() {
  [[ -f "$TORCHSERVE_KEY_FILE" ]] || return 1
  local key
  key=$("$BIN/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["management"]["key"])' \
    "$TORCHSERVE_KEY_FILE" 2>/dev/null) || return 1
  curl -fsS -H "Authorization: Bearer $key" http://127.0.0.1:8081/models/resnet50 2>/dev/null | grep -q '"READY"'
}
for _ in $(seq 1 180); do
  model_ready && break
  sleep 1
done
if ! model_ready; then
  echo "error: TorchServe did not load resnet50; see logs/torchserve/" >&2
  tail -n 30 logs/torchserve/console.log >&2 || true
  exit 1
fi
echo "TorchServe is up: inference 127.0.0.1:8080, management 127.0.0.1:8081, metrics 127.0.0.1:8082"
echo "  keys: $TORCHSERVE_KEY_FILE"

echo "Starting the control API on http://127.0.0.1:8000 (logs/api.log)..."
PATH="$BIN:$PATH" scripts/boot.sh >>logs/api.log 2>&1 &
API_PID=$!
for _ in $(seq 1 60); do
  curl -fsS -o /dev/null http://127.0.0.1:8000/health 2>/dev/null && break
  sleep 1
done
curl -sS http://127.0.0.1:8000/health || { echo "error: the control API did not start; see logs/api.log" >&2; exit 1; }
echo
echo "Ready. API docs: http://127.0.0.1:8000/docs  -  Ctrl-C stops everything."
# Only the API ending ends the run: TorchServe's supervisor restarts it whenever it exits.
wait "$API_PID"
