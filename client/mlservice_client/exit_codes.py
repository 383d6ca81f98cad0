"""``mlsvc``'s exit codes, for scripts (``HELP``, shown by ``mlsvc --help``)."""

from __future__ import annotations

from .errors import (
    ApiError,
    AuthenticationError,
    ClientError,
    NotLoggedInError,
    PermissionDeniedError,
    RateLimitedError,
    ServiceUnavailableError,
    TransportError,
)

HELP = """\b
0    everything asked for was done (every file classified)
1    the run finished, but some files failed (each has its error line)
2    usage error (bad option or argument, no input found)
3    authentication: not logged in, a token that cannot be renewed, wrong credentials, admins only
4    the service could not be reached, or stayed unavailable (503, 429) past the retry deadline
5    any other error answer from the API (e.g. an unknown model or version)
130  interrupted (Ctrl-C); `classify --resume` finishes the run"""

OK = 0
SOME_FAILED = 1
USAGE = 2
AUTH = 3
UNAVAILABLE = 4
API_ERROR = 5
INTERRUPTED = 130


def for_error(error: ClientError) -> int:
    """The exit code for an error that stopped a command."""
    if isinstance(error, AuthenticationError | PermissionDeniedError | NotLoggedInError):
        return AUTH
    if isinstance(error, TransportError | ServiceUnavailableError | RateLimitedError):
        return UNAVAILABLE
    if isinstance(error, ApiError):
        return API_ERROR
    return SOME_FAILED
