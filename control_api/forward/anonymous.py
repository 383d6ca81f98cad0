"""/forward without a valid token: refused before anything is written.

Anyone can send requests without a token, as fast as they like; a history row for each would let one
client grow the history (and the stats rollup) without bound. So these 401s are counted in metrics
(``api_forward_anonymous_total{error}``), not written, and each address gets a budget of them
(``RATE_LIMIT_FORWARD_ANONYMOUS``; 429 past it), checked before the body is read.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask_limiter import RateLimitExceeded

from ..auth.guards import authenticate
from ..errors import APIError
from ..ops.counters import FORWARD_ANONYMOUS
from ..rate_limits import enforce

F = TypeVar("F", bound=Callable[..., Any])


def signed_in_unrecorded(f: F) -> F:
    """``token_required`` for /forward, outside ``recorded``: a refusal leaves no history row."""

    @wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            authenticate()
        except APIError as refused:
            try:
                enforce("forward_anonymous")
            except RateLimitExceeded:
                FORWARD_ANONYMOUS.labels("rate_limited").inc()
                raise
            FORWARD_ANONYMOUS.labels(refused.slug).inc()
            raise
        return f(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
