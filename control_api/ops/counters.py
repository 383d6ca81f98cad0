"""The Prometheus counters and histograms, and their exposition (``GET /metrics`` serves it).

Under gunicorn every worker is a process of its own, so the counters live in prometheus-client's
multiprocess mode: gunicorn.conf.py points ``PROMETHEUS_MULTIPROC_DIR`` at an empty directory before any
worker starts, each worker writes its values to files there, and ``/metrics`` sums them over all the
workers, live or dead, whichever worker answers. Without that variable (tests, ``flask run``) the
process's own registry is served.

The names are part of the monitoring contract (monitoring/grafana reads them):

- ``api_requests_total{endpoint, method, status}``: every HTTP request; ``endpoint`` is the URL rule
  (``/models/<name>/<version>``), never the raw path, so the label set stays small.
- ``api_request_duration_seconds{endpoint}``: the whole request, histogram.
- ``api_upstream_duration_seconds{model, version}``: waiting on TorchServe for one image, histogram.
- ``api_forward_images_total{model, version, status}``: each image /forward sent upstream, by outcome.
- ``api_upstream_errors_total{kind}``: TorchServe unreachable, timed out, failing, out of workers...
- ``api_db_errors_total``: database failures seen by requests.
- ``api_forward_anonymous_total{error}``: /forward calls refused for want of a valid token (401
  ``missing_token``, ``invalid_token``..., or 429 ``rate_limited`` per address), which write no history.

Model and version labels come from TorchServe's answer or a name it knows; a name it does not know (404)
is counted as ``unknown``, so clients cannot grow the label set by inventing model names.
"""

from __future__ import annotations

import os

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

# *_created series double the output for nothing Grafana uses (and multiprocess mode has none anyway).
disable_created_metrics()

# Decided when prometheus-client is first imported: values go to files only if the directory was set then.
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
if MULTIPROCESS:
    # Any process of the app writes there, CLI commands (flask db upgrade) included: make sure it exists.
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
UNKNOWN = "unknown"

# From a cached health check to a slow batch of large images on CPU.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

REQUESTS = Counter(
    "api_requests_total",
    "HTTP requests by endpoint (URL rule), method and status.",
    ["endpoint", "method", "status"],
)
REQUEST_DURATION = Histogram(
    "api_request_duration_seconds",
    "Time to answer a request, by endpoint (URL rule).",
    ["endpoint"],
    buckets=LATENCY_BUCKETS,
)
UPSTREAM_DURATION = Histogram(
    "api_upstream_duration_seconds",
    "Time waiting on TorchServe for one image, by model and version.",
    ["model", "version"],
    buckets=LATENCY_BUCKETS,
)
FORWARD_IMAGES = Counter(
    "api_forward_images_total",
    "Images /forward sent to TorchServe, by model, version and the image's status code.",
    ["model", "version", "status"],
)
UPSTREAM_ERRORS = Counter(
    "api_upstream_errors_total",
    "TorchServe failures: unavailable, timeout, no_worker, server_error, key (rejected key), bad_answer.",
    ["kind"],
)
DB_ERRORS = Counter("api_db_errors_total", "Database failures seen while answering requests.")
FORWARD_ANONYMOUS = Counter(
    "api_forward_anonymous_total",
    "/forward calls refused without a valid token (no history row), by error slug.",
    ["error"],
)
SHADOW_REQUESTS = Counter(
    "api_shadow_requests_total",
    "Shadow copies of /forward requests: sent (answered or failed) or dropped (the queue was full).",
    ["outcome"],
)


def exposition() -> bytes:
    """The metrics in Prometheus' text format: summed over every worker in multiprocess mode."""
    if MULTIPROCESS:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)
