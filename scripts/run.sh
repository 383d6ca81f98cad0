#!/usr/bin/env bash
# Starts TorchServe and the control API on their embedded defaults, in the foreground.
# TorchServe runs under launcher.supervise: if it dies it is started again (like compose's restart policy)
# while the API keeps answering (503 in between). Ctrl-C, or `make stop` from another shell, stops both.
# Logs go under logs/.
#
# A second, private copy can run next to it (the bench's warm-start step runs one): the environment moves
# its state, logs, archives and ports. INSTANCE_PATH (instance/: secrets, database, pid files, TorchServe's
# home), RUN_LOGS (logs/), RUN_MODEL_STORE (model_store/), RUN_TS_CONFIG (config.properties: TorchServe's
# ports, which the API is pointed at) and API_BIND (127.0.0.1:8000). `make stop` stops the copy whose
# INSTANCE_PATH it is given.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=$ROOT/.venv/bin
INSTANCE=${INSTANCE_PATH:-$ROOT/instance}
LOGS=${RUN_LOGS:-$ROOT/logs}
MODEL_STORE=${RUN_MODEL_STORE:-$ROOT/model_store}
TS_CONFIG=${RUN_TS_CONFIG:-$ROOT/config.properties}
TS_HOME=$INSTANCE/torchserve   # TorchServe's cwd: its key_file.json lands here
mkdir -p "$TS_HOME/tmp" "$LOGS/torchserve"

scripts/init_secrets.sh
# The environment wins over the generated file: export only what is still unset.
while IFS='=' read -r name value; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  [[ -z "${!name:-}" ]] && export "$name=$value"
done < "$INSTANCE/secrets.env"

# TorchServe's address of one kind (inference, management, metrics) as its config states it.
ts_address() { sed -n "s|^$1_address=||p" "$TS_CONFIG"; }
export TORCHSERVE_KEY_FILE="${TORCHSERVE_KEY_FILE:-$TS_HOME/key_file.json}"
export TORCHSERVE_INFERENCE_URL="${TORCHSERVE_INFERENCE_URL:-$(ts_address inference)}"
export TORCHSERVE_MANAGEMENT_URL="${TORCHSERVE_MANAGEMENT_URL:-$(ts_address management)}"
export API_BIND="${API_BIND:-127.0.0.1:8000}" API_PIDFILE="${API_PIDFILE:-$INSTANCE/gunicorn.pid}"
API_URL=http://$API_BIND

stop_all() {
  trap - INT TERM EXIT
  echo "Stopping..."
  scripts/stop.sh || true
}
trap stop_all INT TERM EXIT

echo "Starting TorchServe ($LOGS/torchserve/)..."
rm -f "$TS_HOME/key_file.json"
# TMPDIR (pid file) and TEMP (worker sockets, unpacked archives) are per instance, so that a test run's
# TorchServe never clashes with this one. It writes a fresh key_file.json at each start; the API re-reads it.
TMPDIR="$TS_HOME/tmp" TEMP="$TS_HOME/tmp" LOG_LOCATION="$LOGS/torchserve" \
  METRICS_LOCATION="$LOGS/torchserve" "$BIN/python" -m launcher.supervise --name TorchServe \
  --cwd "$TS_HOME" --pidfile "$INSTANCE/torchserve.supervisor.pid" \
  -- "$BIN/torchserve" --start --foreground --ncs --ts-config "$TS_CONFIG" \
  --model-store "$MODEL_STORE" --models "resnet50=${RUN_ARCHIVE:-resnet50.mar}" \
  >>"$LOGS/torchserve/console.log" 2>&1 &

# /ping needs the inference key and says Healthy before the worker is up: wait for a READY worker instead.
model_ready() {
  [[ -f "$TORCHSERVE_KEY_FILE" ]] || return 1
  local key
  key=$("$BIN/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["management"]["key"])' \
    "$TORCHSERVE_KEY_FILE" 2>/dev/null) || return 1
  curl -fsS -H "Authorization: Bearer $key" "$TORCHSERVE_MANAGEMENT_URL/models/resnet50" 2>/dev/null | grep -q '"READY"'
}
for _ in $(seq 1 180); do
  model_ready && break
  sleep 1
done
if ! model_ready; then
  echo "error: TorchServe did not load resnet50; see $LOGS/torchserve/" >&2
  tail -n 30 "$LOGS/torchserve/console.log" >&2 || true
  exit 1
fi
echo "TorchServe is up: inference $(ts_address inference), management $(ts_address management)," \
  "metrics $(ts_address metrics)"
echo "  keys: $TORCHSERVE_KEY_FILE"

echo "Starting the control API on $API_URL ($LOGS/api.log)..."
PATH="$BIN:$PATH" scripts/boot.sh >>"$LOGS/api.log" 2>&1 &
API_PID=$!
for _ in $(seq 1 60); do
  curl -fsS -o /dev/null "$API_URL/health" 2>/dev/null && break
  sleep 1
done
curl -sS "$API_URL/health" || { echo "error: the control API did not start; see $LOGS/api.log" >&2; exit 1; }
echo
echo "Ready. API docs: $API_URL/docs  -  Ctrl-C stops everything."
# Only the API ending ends the run: TorchServe's supervisor restarts it whenever it exits.
wait "$API_PID"
