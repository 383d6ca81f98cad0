"""``GET /metrics``: the Prometheus counters (ops/counters.py) in the text exposition format.

``/metrics`` needs no JWT (Prometheus scrapes it). With ``METRICS_TOKEN`` set it requires
``Authorization: Bearer <METRICS_TOKEN>``; without it, keep the path off the public network (the
metrics say how busy the service is and which models it runs, nothing about users or images).
"""

from __future__ import annotations

import hmac
from typing import Any

from apiflask import APIBlueprint
from flask import Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST

from ..errors import APIError
from .counters import exposition

bp = APIBlueprint("metrics", __name__, tag="Operations")
RESPONSES: dict[int | str, dict[str, str | dict[str, dict[str, Any]]]] = {
    200: {
        "description": "Prometheus text format",
        "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
    },
    401: {"description": "METRICS_TOKEN is set and was not sent"},
}


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
    responses=RESPONSES,
)
def metrics() -> Response:
    _check_token()
    return Response(exposition(), content_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})
