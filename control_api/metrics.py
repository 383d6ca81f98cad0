"""Prometheus metrics, and ``GET /metrics``.

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

Model and version labels come from TorchServe's answer or a name it knows; a name it does not know (404)
is counted as ``unknown``, so clients cannot grow the label set by inventing model names.

Access: ``/metrics`` needs no JWT (Prometheus scrapes it). With ``METRICS_TOKEN`` set it requires
``Authorization: Bearer <METRICS_TOKEN>``; without it, keep the path off the public network (the
metrics say how busy the service is and which models it runs, nothing about users or images).
"""

from __future__ import annotations

import hmac
import os

from apiflask import APIBlueprint
from flask import Response, current_app, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

from .errors import APIError

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

bp = APIBlueprint("metrics", __name__, tag="Operations")


def exposition() -> bytes:
    """The metrics in Prometheus' text format: summed over every worker in multiprocess mode."""
    if MULTIPROCESS:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def _check_token() -> None:
    expected = current_app.config.get("METRICS_TOKEN") or ""
    if not expected:
        return
    header = request.headers.get("Authorization", "")
    given = header[len("Bearer ") :] if header.startswith("Bearer ") else ""
    if not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
        raise APIError(
            401,
            "invalid_metrics_token",
            "GET /metrics needs Authorization: Bearer <METRICS_TOKEN>.",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )


@bp.get("/metrics")
@bp.doc(
    summary="Prometheus metrics",
    description="Text exposition format. Open unless METRICS_TOKEN is set: then `Authorization: Bearer "
    "<METRICS_TOKEN>` (not a JWT). Without a token, keep it reachable from the monitoring network only.",
    responses={200: "Prometheus text format", 401: "METRICS_TOKEN is set and was not sent"},
)
def metrics() -> Response:
    _check_token()
    return Response(exposition(), content_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})
