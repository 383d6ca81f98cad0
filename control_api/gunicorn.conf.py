"""gunicorn settings for the control API (``gunicorn -c control_api/gunicorn.conf.py``).

Threaded workers: a request mostly waits on TorchServe, so threads serve concurrency cheaply, and several
worker processes keep one crash or GIL-heavy request from stalling the rest. Each setting can be
overridden from the environment.

Metrics: prometheus-client's multiprocess mode needs ``PROMETHEUS_MULTIPROC_DIR`` set before any worker
imports it. This file sets it (a fresh temporary directory unless the environment names one), empties it
when gunicorn starts (values of a previous run would be summed in), tells prometheus-client when a worker
exits, and removes the directory at exit if it made it.

Logs: with ``LOG_FORMAT=json`` gunicorn's own lines are JSON too, and its access log is left to the app
(``control_api.access``: one line per request with the request ID and the user). In text mode gunicorn
keeps its usual format and writes an access log only when ``API_ACCESS_LOG`` names a file (or "-").
"""

import glob
import importlib.util
import os
import shutil
import tempfile

bind = os.environ.get("API_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("API_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("API_THREADS", "8"))
# Longer than TORCHSERVE_TIMEOUT (30 s), so a slow upstream gets a 504 from us, not a killed worker.
timeout = int(os.environ.get("API_TIMEOUT", "120"))
graceful_timeout = 30
keepalive = 5
# gunicorn's longest request line (its default is 4094): longer URLs than the app's MAX_URL_BYTES reach the
# app, which answers them a JSON 414.
limit_request_line = 8190
pidfile = os.environ.get("API_PIDFILE", "instance/gunicorn.pid")
accesslog = os.environ.get("API_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("API_LOG_LEVEL", "info")
wsgi_app = "control_api:create_app()"

# --- Prometheus multiprocess mode. ---------------------------------------------------------------------
# Set up in on_starting, in the master before any worker forks: reading this file has no side effects.
_made_metrics_dir: list[str] = []


def on_starting(server):
    """Point PROMETHEUS_MULTIPROC_DIR at an empty directory before the first worker starts (workers
    inherit the environment; values of an earlier run must not be summed in)."""
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not metrics_dir:
        metrics_dir = tempfile.mkdtemp(prefix="control-api-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        _made_metrics_dir.append(metrics_dir)
    os.makedirs(metrics_dir, exist_ok=True)
    for stale in glob.glob(os.path.join(metrics_dir, "*.db")):
        os.remove(stale)


def child_exit(server, worker):
    """A worker is gone: prometheus-client drops its live gauges (its counters stay in the sums)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, os.environ["PROMETHEUS_MULTIPROC_DIR"])


def on_exit(server):
    for made in _made_metrics_dir:
        shutil.rmtree(made, ignore_errors=True)


# --- Garbage collection. --------------------------------------------------------------------------------
def post_worker_init(worker):
    """The app is loaded: move what it allocated so far (over 100,000 objects) out of the collector's
    way. A full collection otherwise walks all of them, stalling the worker's requests meanwhile; those
    objects live as long as the worker anyway."""
    import gc

    gc.freeze()
    # One worker per host keeps TorchServe in the desired state (control_api/model_admin/reconciler.py).
    from control_api.model_admin.reconciler import start_background

    start_background(worker.wsgi)


# --- Logging. ---------------------------------------------------------------------------------------------
def _logs_module():
    """control_api/ops/logs.py by path: the master formats its lines without importing the whole app."""
    spec = importlib.util.spec_from_file_location(
        "_control_api_logs", os.path.join(os.path.dirname(os.path.abspath(__file__)), "ops", "logs.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if os.environ.get("LOG_FORMAT", "text").strip().lower() == "json":
    logconfig_dict = _logs_module().gunicorn_logconfig("json", os.environ.get("LOG_LEVEL", "INFO").upper())
