"""Errors: every error response has the same JSON shape, ``{"error": "<slug>", "message": "<text>"}``.

Validation errors add ``details`` (field name -> messages). Views raise ``APIError``; APIFlask's
validation errors, werkzeug's HTTP exceptions and database outages are turned into the same shape here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from apiflask import APIFlask, HTTPError
from apiflask.exceptions import _ValidationError
from flask import Response, jsonify
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException

from .ops.counters import DB_ERRORS

log = logging.getLogger(__name__)

# The slug for errors raised without one (werkzeug's, or APIFlask's), by status code.
DEFAULT_SLUGS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    500: "internal_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "upstream_timeout",
}

# OpenAPI: the documented shape of every error response.
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "machine-readable slug, e.g. invalid_token"},
        "message": {"type": "string", "description": "human-readable explanation"},
        "details": {"type": "object", "description": "validation errors: location -> field -> messages"},
    },
}


class APIError(HTTPError):
    """An error answer: status code, slug and message (and optional response headers)."""

    def __init__(
        self,
        status: int,
        slug: str,
        message: str,
        headers: Mapping[str, str] | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(
            status, message, detail=details, headers=dict(headers or {}), extra_data={"error": slug}
        )

    @property
    def slug(self) -> str:
        return str(self.extra_data["error"])


def error_body(status: int, slug: str | None, message: str | None, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "error": slug or DEFAULT_SLUGS.get(status, "error"),
        "message": message or "Error",
    }
    if details:
        body["details"] = details
    return body


def _describe_validation(detail: Any) -> str:
    """One line naming the offending fields, e.g. 'Invalid input: username, password.'."""
    names: list[str] = []
    if isinstance(detail, Mapping):
        for location in detail.values():
            if isinstance(location, Mapping):
                names.extend(str(name) for name in location)
    if not names:
        return "The request is invalid."
    return "Invalid input: " + ", ".join(sorted(set(names))) + "."


def process_error(error: HTTPError) -> tuple[dict[str, Any], int, Any]:
    """APIFlask's error processor: HTTPError (incl. validation errors) -> our shape."""
    slug = error.extra_data.get("error") if error.extra_data else None
    details = error.detail if isinstance(error, _ValidationError) else None
    message = error.message
    if isinstance(error, _ValidationError):
        slug = "validation_error"
        message = _describe_validation(error.detail)
    return error_body(error.status_code, slug, message, details), error.status_code, error.headers


def status_of(exc: BaseException) -> int:
    """The status code an exception ends up as (for the history row of a failed request)."""
    if isinstance(exc, HTTPError):
        return int(exc.status_code)
    if isinstance(exc, HTTPException):
        return int(exc.code or 500)
    if isinstance(exc, OperationalError | PoolTimeoutError):
        return 503
    return 500


def message_of(exc: BaseException) -> str:
    if isinstance(exc, _ValidationError):
        return _describe_validation(exc.detail)
    if isinstance(exc, HTTPError):
        return str(exc.message)
    if isinstance(exc, HTTPException):
        return str(exc.description or exc.name)
    return "Internal server error"


def _http_exception(exc: HTTPException) -> Response:
    """werkzeug's exceptions (404, 405, 413, bad multipart, ...) keep their description."""
    code = exc.code or 500
    slug, message = None, exc.description or exc.name
    data = getattr(exc, "data", None)  # webargs attaches its messages, e.g. for a malformed JSON body
    if isinstance(data, Mapping) and isinstance(data.get("messages"), Mapping):
        if "json" in data["messages"]:
            slug = "invalid_json"
        message = " ".join(str(m) for msgs in data["messages"].values() for m in _as_list(msgs))
    body = error_body(code, slug, message)
    response = jsonify(body)
    response.status_code = code
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _database_error(exc: Exception) -> Response:
    DB_ERRORS.inc()
    log.exception("Database unavailable")
    response = jsonify(error_body(503, "database_unavailable", "The database is unavailable; retry shortly."))
    response.status_code = 503
    response.headers["Retry-After"] = "5"
    return response


def _unexpected(exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return _http_exception(exc)
    log.exception("Unhandled error")
    response = jsonify(error_body(500, "internal_error", "Internal server error."))
    response.status_code = 500
    return response


def register_error_handlers(app: APIFlask) -> None:
    app.error_processor(process_error)
    # Registered after APIFlask's own handler for HTTPException, so this one wins.
    app.register_error_handler(HTTPException, _http_exception)
    app.register_error_handler(OperationalError, _database_error)
    app.register_error_handler(PoolTimeoutError, _database_error)
    app.register_error_handler(Exception, _unexpected)
