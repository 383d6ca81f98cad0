"""Logging: plain text, or JSON lines when ``LOG_FORMAT=json``; every record carries the request ID.

Standard library (and Flask, lazily) only: gunicorn.conf.py loads this file by path in the gunicorn master,
so that the master formats its own lines the same way without importing the application.

A text line is ``TEXT_FORMAT`` with control characters escaped (``TextFormatter``), so that nothing a
client sends (a decoded path, a header) can start a line of its own; a JSON line has them escaped by
``json.dumps`` (and U+2028/U+2029 by ``JsonFormatter``). A JSON line holds ``ts`` (UTC, ISO 8601),
``level``, ``logger``, ``message``, ``request_id`` (inside a request), every ``extra={...}`` field the call
passed, and ``exc_info`` for exceptions.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
# Attributes every LogRecord has: whatever else a record carries came from ``extra=``.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
    | {"message", "asctime", "request_id", "taskName"}
)
_OUR_HANDLER = "_control_api_handler"


class RequestIdFilter(logging.Filter):
    """Sets ``record.request_id``: the current request's ID, or "-" outside a request."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = _current_request_id() or "-"
        return True


def _current_request_id() -> str | None:
    try:
        from flask import g, has_request_context
    except ImportError:  # pragma: no cover - flask is always installed with the app
        return None
    if not has_request_context():
        return None
    value = g.get("request_id")
    return str(value) if value else None


class JsonFormatter(logging.Formatter):
    """One JSON object per line; values that JSON cannot hold are written with ``str()``."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id and request_id != "-":
            payload["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_") and key not in payload:
                payload[key] = value
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            payload["stack_info"] = self.formatStack(record.stack_info)
        # json.dumps escapes CR, LF and the other C0 characters; U+2028/U+2029 are line breaks to many
        # readers (JavaScript, str.splitlines) but not to JSON: escape those too.
        line = json.dumps(payload, default=str, ensure_ascii=False)
        return line.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


# Control characters (C0, DEL, C1) and Unicode's line and paragraph separators, as visible escapes.
_CONTROL_ESCAPES = {
    code: {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}.get(code, f"\\x{code:02x}")
    for code in (*range(0x20), *range(0x7F, 0xA0))
} | {0x2028: "\\u2028", 0x2029: "\\u2029"}


def escape_controls(text: str) -> str:
    """``text`` on one line: CR, LF and every other control character written as an escape."""
    return text.translate(_CONTROL_ESCAPES)


class TextFormatter(logging.Formatter):
    """``TEXT_FORMAT`` lines that a client cannot break: a decoded path, a username or a header value
    holding CR/LF (or other control characters) is escaped, never a new line. A traceback keeps its lines
    below its record's line."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape_controls(super().formatMessage(record))


def make_formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter(TEXT_FORMAT)


def make_handler(log_format: str, stream: IO[str] | None = None) -> logging.Handler:
    """A stream handler (stderr by default) with the chosen format and the request-ID filter."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(make_formatter(log_format))
    handler.addFilter(RequestIdFilter())
    setattr(handler, _OUR_HANDLER, True)
    return handler


def configure_logging(log_format: str, level: str = "INFO") -> None:
    """Install our handler on the root logger, once per process (every app of the process shares it).

    A root logger someone else configured (pytest, an embedding program) is left alone.
    """
    root = logging.getLogger()
    if root.handlers:
        return
    root.addHandler(make_handler(log_format))
    root.setLevel(level)


def gunicorn_logconfig(log_format: str, level: str = "INFO") -> dict[str, Any]:
    """``logconfig_dict`` for gunicorn (JSON mode): the root logger and gunicorn's own in our format.

    Workers inherit the root handler, so the app's lines match. gunicorn's access log is dropped: the
    app's ``control_api.access`` logger writes one line per request, with the request ID and the user.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": {"()": lambda: make_formatter(log_format)}},
        "filters": {"request_id": {"()": RequestIdFilter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "main",
                "filters": ["request_id"],
            }
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"handlers": [], "level": level, "propagate": True},
            "gunicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
        },
    }
