"""The error a request row can cause: it becomes that row's HTTP status and ``{"error", "message"}`` body.

Raised by the request parsing (``classifier_request``) and the image pipeline (``classifier_image``); the
handler records it on the row, so one bad image fails alone and the rest of the batch is served.
"""

from __future__ import annotations


class InputError(Exception):
    """A request row that cannot be served: ``status`` (4xx), ``slug`` (the ``error`` field), ``message``."""

    def __init__(self, status: int, slug: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.slug = slug
        self.message = message
