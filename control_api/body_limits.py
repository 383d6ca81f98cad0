"""How large a request body and its URL may be: decided here, answered 413 ``payload_too_large`` and 414
``uri_too_long`` from here.

/forward's uploads: the files together at most MAX_UPLOAD_MB (``MAX_UPLOAD_BYTES``), in a body of at
most that plus a multipart envelope (``MAX_CONTENT_LENGTH``); config.py derives both from MAX_UPLOAD_MB.
One limit, checked wherever the size becomes known:

- a declared Content-Length over the body limit, before a byte of the body is read
  (``refuse_oversized_upload(length, whole_body=True)``);
- a chunked body (no Content-Length), cut off by werkzeug once it streams past the body limit
  (``request.max_content_length``, set for each request here);
- the parsed files, which must add up to at most the upload limit
  (``refuse_oversized_upload(total, whole_body=False)``).

Archive uploads (``POST /models/archives``) have their own limit, MAX_ARCHIVE_MB plus the envelope
(``MAX_ARCHIVE_CONTENT_LENGTH``), and are streamed to a temporary file rather than kept in memory.
Every other endpoint takes JSON or form bodies of at most SMALL_BODY_BYTES.

A URL (path and query string) may be MAX_URL_BYTES long; a longer one gets a JSON 414 (gunicorn itself
refuses request lines over its limit_request_line, 8190 bytes, before the app sees them).
"""

from __future__ import annotations

from flask import Flask, current_app, request

from .errors import APIError

SMALL_BODY_BYTES = 1024 * 1024
MAX_URL_BYTES = 4096
# The endpoints that take uploads (blueprint.view).
UPLOAD_ENDPOINTS = frozenset({"forward.forward"})
# The endpoints whose uploads go to disk as they arrive (werkzeug's spooled temporary files).
STREAMED_ENDPOINTS = frozenset({"archives.upload_archive"})


def refuse_oversized_upload(size: int, *, whole_body: bool) -> None:
    """413 when ``size`` bytes exceed the limit: of the whole body, or of the files in it."""
    config = current_app.config
    limit = config["MAX_CONTENT_LENGTH"] if whole_body else config["MAX_UPLOAD_BYTES"]
    if size <= limit:
        return
    megabytes = config["MAX_UPLOAD_MB"]
    if whole_body:
        message = f"The upload is {size} bytes; the limit is {megabytes} MB."
    else:
        message = f"The files exceed {megabytes} MB."
    raise APIError(413, "payload_too_large", message)


def refuse_long_url() -> None:
    """414 when the path and query string are over MAX_URL_BYTES."""
    length = len(request.environ.get("RAW_URI") or request.full_path)
    if length > MAX_URL_BYTES:
        raise APIError(414, "uri_too_long", f"The URL is {length} bytes; the limit is {MAX_URL_BYTES}.")


def _limit_body() -> None:
    if request.endpoint in UPLOAD_ENDPOINTS:
        request.max_content_length = current_app.config["MAX_CONTENT_LENGTH"]
    elif request.endpoint in STREAMED_ENDPOINTS:
        request.max_content_length = current_app.config["MAX_ARCHIVE_CONTENT_LENGTH"]
    else:
        request.max_content_length = SMALL_BODY_BYTES
    if request.endpoint not in UPLOAD_ENDPOINTS:
        refuse_long_url()  # /forward checks its URL in the view, where the refusal gets its history row


def init_app(app: Flask) -> None:
    app.before_request(_limit_body)
