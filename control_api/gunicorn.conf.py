"""gunicorn settings for the control API (``gunicorn -c control_api/gunicorn.conf.py``).

Threaded workers: a request mostly waits on TorchServe, so threads serve concurrency cheaply, and several
worker processes keep one crash or GIL-heavy request from stalling the rest. Each setting can be
overridden from the environment.
"""

import os

bind = os.environ.get("API_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("API_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("API_THREADS", "8"))
# Longer than TORCHSERVE_TIMEOUT (30 s), so a slow upstream gets a 504 from us, not a killed worker.
timeout = int(os.environ.get("API_TIMEOUT", "120"))
graceful_timeout = 30
keepalive = 5
pidfile = os.environ.get("API_PIDFILE", "instance/gunicorn.pid")
accesslog = os.environ.get("API_ACCESS_LOG", "-")
errorlog = "-"
loglevel = os.environ.get("API_LOG_LEVEL", "info")
wsgi_app = "control_api:create_app()"
