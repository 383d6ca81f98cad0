"""Per-request plumbing: the request ID, the request metrics and one access-log line per request.

Request IDs: a client's ``X-Request-ID`` is kept when it is 1-64 characters of ``[A-Za-z0-9._:-]`` (it
ends up in logs, a database column and TorchServe's request headers, so nothing else gets through);
otherwise a fresh one (32 hex digits) replaces it. Either way it is ``g.request_id`` for the whole
request, goes to TorchServe as ``X-Request-ID``, into the history row and the audit row, onto every
log line written during the request, and back to the client in the ``X-Request-ID`` response header.
"""

from __future__ import annotations

import logging
import time
import uuid

from flask import Flask, Response, g, has_request_context, request

from ..auth.identity import current_user
from ..names import is_request_id
from . import counters

REQUEST_ID_HEADER = "X-Request-ID"
UNMATCHED = "unmatched"

access_log = logging.getLogger("control_api.access")


def new_request_id() -> str:
    return uuid.uuid4().hex


def sanitized_request_id(value: str | None) -> str:
    """The client's ID when it is sane, else a new one."""
    if value and is_request_id(value):
        return value
    return new_request_id()


def current_request_id() -> str | None:
    """This request's ID (None outside a request)."""
    if not has_request_context():
        return None
    value = g.get("request_id")
    return str(value) if value else None


def _endpoint_label() -> str:
    rule = request.url_rule
    return rule.rule if rule is not None else UNMATCHED


def _start() -> None:
    g.request_id = sanitized_request_id(request.headers.get(REQUEST_ID_HEADER))
    g.request_started = time.perf_counter()


def _finish(response: Response) -> Response:
    request_id = g.get("request_id") or new_request_id()
    response.headers[REQUEST_ID_HEADER] = request_id
    elapsed = time.perf_counter() - g.get("request_started", time.perf_counter())
    endpoint = _endpoint_label()
    user = current_user()
    counters.REQUESTS.labels(endpoint, request.method, str(response.status_code)).inc()
    counters.REQUEST_DURATION.labels(endpoint).observe(elapsed)
    access_log.info(
        "%s %s %s %.1fms",
        request.method,
        request.path,
        response.status_code,
        elapsed * 1000.0,
        extra={
            "method": request.method,
            "path": request.path,
            "endpoint": endpoint,
            "status": response.status_code,
            "duration_ms": round(elapsed * 1000.0, 3),
            "user": user.username if user is not None else None,
            "remote_addr": request.remote_addr,
        },
    )
    return response


def init_app(app: Flask) -> None:
    """Register the hooks: first in line, so every later hook and view sees ``g.request_id``."""
    app.before_request_funcs.setdefault(None, []).insert(0, _start)
    app.after_request(_finish)
