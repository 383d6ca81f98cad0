"""The errors the client raises.

Every answer of 400 or above becomes an ``ApiError`` (or one of its subclasses, chosen by status), carrying
the API's own ``{"error": "<slug>", "message": "..."}``: ``exc.slug`` is what a program should test.
Failures that never got an answer (connection refused, timeout, a file that cannot be read) are
``TransportError`` and ``FileReadError``; both are ``ClientError``, the base of everything raised here.
"""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """Base of every error the client raises; ``slug`` names the kind of failure."""

    slug = "client_error"

    def __init__(self, message: str, slug: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if slug:
            self.slug = slug


class TransportError(ClientError):
    """No answer from the API: connection refused or reset, DNS, timeout."""

    slug = "connection_error"


class FileReadError(ClientError):
    """A local file could not be read (missing, a directory, no permission)."""

    slug = "unreadable_file"


class NotLoggedInError(ClientError):
    """No token and no username and password to get one with."""

    slug = "not_logged_in"


class ApiError(ClientError):
    """The API answered ``status`` >= 400; ``slug``, ``message`` and ``details`` are its error body."""

    def __init__(
        self,
        status: int,
        slug: str,
        message: str,
        details: Any = None,
        retry_after: float | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(f"HTTP {status} {slug}: {message}", slug)
        self.status = status
        self.api_message = message
        self.details = details
        self.retry_after = retry_after
        self.attempts = attempts  # how many times the request was sent before this answer was final


class AuthenticationError(ApiError):
    """401: no token, a bad, expired or revoked one, or wrong credentials (``invalid_credentials``)."""


class PermissionDeniedError(ApiError):
    """403: admins only (``admin_required``), a disabled account, a wrong password."""


class NotFoundError(ApiError):
    """404: an unknown model or version, user or row."""


class InvalidRequestError(ApiError):
    """400, 413, 415 and 422: the request or the image itself is wrong (``unsupported_image``, ...)."""


class RateLimitedError(ApiError):
    """429 after the retry deadline: over the per-user rate limit."""


class ServiceUnavailableError(ApiError):
    """503 after the retry deadline, or another 5xx: the API or TorchServe cannot serve now."""


_BY_STATUS: dict[int, type[ApiError]] = {
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitedError,
}


def error_class(status: int) -> type[ApiError]:
    """The ``ApiError`` subclass for an HTTP status."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return ServiceUnavailableError
    if status in (400, 413, 415, 422):
        return InvalidRequestError
    return ApiError
