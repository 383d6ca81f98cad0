#!/usr/bin/env bash
# Starts the control API: applies the database migrations once, before any worker exists (so workers
# never race on the schema), then replaces itself with gunicorn (signals reach gunicorn directly).
#
# Needs flask and gunicorn on PATH (scripts/run.sh puts .venv/bin first) and the app's environment:
# SECRET_KEY, DATABASE_URL, ADMIN_TOKEN, TORCHSERVE_* ... (control_api/config.py). gunicorn's own:
# API_BIND (127.0.0.1:8000), API_WORKERS (2), API_THREADS (8), API_PIDFILE (instance/gunicorn.pid).
# DB_WAIT_SECONDS (0): keep retrying the migration that long while the database comes up (containers).
set -euo pipefail
cd "$(dirname "$0")/.."

deadline=$((SECONDS + ${DB_WAIT_SECONDS:-0}))
until flask --app control_api db upgrade; do
  if ((SECONDS >= deadline)); then
    echo "error: database migration failed" >&2
    exit 1
  fi
  echo "database not ready; retrying..." >&2
  sleep 2
done

exec gunicorn --config control_api/gunicorn.conf.py "control_api:create_app()"
