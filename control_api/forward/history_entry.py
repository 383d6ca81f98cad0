"""The history row of a /forward request: ``ForwardLog`` collects what it will say while the request
runs, and ``@recorded`` writes it, success or failure, committed before the response leaves.

``@recorded`` is the view's outermost decorator after the route, so a request refused by any later
one (401 no token, 429 over the limit, 413 too large, 422 bad fields) has its row too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, g

from ..auth.identity import current_user
from ..errors import APIError, message_of, status_of
from ..ops.counters import DB_ERRORS
from ..ops.request_tracking import current_request_id, new_request_id
from ..records.writes import record
from ..tables import utcnow

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
MAX_ERROR_MESSAGE = 1000


@dataclass
class ForwardLog:
    """What the history row will say about this request; filled in as the request goes."""

    request_id: str = field(default_factory=lambda: current_request_id() or new_request_id())
    started: float = field(default_factory=time.perf_counter)
    created_at: Any = field(default_factory=utcnow)
    request_type: str = "forward"
    model_name: str | None = None
    model_version: str | None = None
    file_count: int = 0
    input_size: int | None = None
    width: int | None = None
    height: int | None = None
    upstream_ms: float | None = None
    result: Any = None

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000.0


def current_entry() -> ForwardLog:
    """This request's entry (inside a ``@recorded`` view)."""
    entry: ForwardLog = g.forward_log
    return entry


def _write_history(entry: ForwardLog, status: int, error: str | None) -> None:
    user = current_user()
    row = {
        "created_at": entry.created_at,
        "request_id": entry.request_id,
        "request_type": entry.request_type,
        "user_id": user.id if user else None,
        "username": user.username if user else "",
        "model_name": entry.model_name,
        "model_version": entry.model_version,
        "file_count": entry.file_count,
        "processing_time": round(entry.elapsed_ms(), 3),
        "upstream_time": None if entry.upstream_ms is None else round(entry.upstream_ms, 3),
        "input_data_size": entry.input_size,
        "image_width": entry.width,
        "image_height": entry.height,
        "status_code": status,
        "result": entry.result,
        "error_message": error[:MAX_ERROR_MESSAGE] if error else None,
    }
    try:
        record(row)
    except Exception as exc:
        DB_ERRORS.inc()
        log.exception("Could not write the history row for request %s", entry.request_id)
        raise APIError(
            503,
            "database_unavailable",
            "The request could not be recorded; retry shortly.",
            headers={"Retry-After": str(current_app.config["RETRY_AFTER_SECONDS"])},
        ) from exc


def recorded(f: F) -> F:
    """Write one history row per request, success or failure, and commit it before the response leaves."""

    @wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        entry = g.forward_log = ForwardLog()
        try:
            response = current_app.make_response(f(*args, **kwargs))
        except Exception as exc:
            _write_history(entry, status_of(exc), message_of(exc))
            raise
        _write_history(entry, response.status_code, None)
        return response

    return wrapper  # type: ignore[return-value]
