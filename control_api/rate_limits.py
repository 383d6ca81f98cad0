"""Rate limits with Flask-Limiter: ``/token`` and ``/register`` per client IP, ``/forward`` per user.

Limits are settings (``RATE_LIMIT_TOKEN``, ``RATE_LIMIT_REGISTER``, ``RATE_LIMIT_FORWARD``, in
Flask-Limiter's syntax, e.g. ``10/minute;100/hour``; empty turns one off; ``RATE_LIMIT_ENABLED=false``
turns them all off). Counters live in Redis when ``REDIS_URL`` is set, so every gunicorn worker (and every
API container) shares them; otherwise in each process's memory, which is per worker: good enough for one
process, N times too generous with N workers. If Redis goes away, the limiter falls back to memory
(logged) instead of failing the requests, and goes back to Redis when it answers again.

Each app gets its own ``Limiter`` (its storage and settings), built in ``init_app``. Views say where
their limit is checked with ``@rate_limited(name)``: for /forward that is inside ``recorded`` and after
``token_required``, so a refused request is in the history with its user, and the key is the user.

Over a limit: 429 in our error shape, with ``Retry-After`` (seconds until the window resets) and the
``X-RateLimit-Limit/Remaining/Reset`` headers, which every limited endpoint's answers carry.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, Response, current_app, jsonify, request
from flask_limiter import Limiter, RateLimitExceeded

from .auth.identity import current_user
from .errors import error_body

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
EXTENSION = "rate_limits"

# name -> the setting holding its limit; init_app wires one for each @rate_limited view.
LIMITS = {
    "token": "RATE_LIMIT_TOKEN",
    "register": "RATE_LIMIT_REGISTER",
    "forward": "RATE_LIMIT_FORWARD",
}
_VIEWS: dict[str, Callable[..., Any]] = {}


def client_ip() -> str:
    """The client's address (the proxies' X-Forwarded-For is applied first when TRUSTED_PROXIES > 0)."""
    return f"ip:{request.remote_addr or 'unknown'}"


def current_user_key() -> str:
    """The signed-in user (``token_required`` ran first); by IP otherwise."""
    user = current_user()
    return f"user:{user.id}" if user is not None else client_ip()


KEY_FUNCS: dict[str, Callable[[], str]] = {
    "token": client_ip,
    "register": client_ip,
    "forward": current_user_key,
}


def rate_limited(name: str) -> Callable[[F], F]:
    """Check the ``name`` limit (see LIMITS) where this decorator sits in the view's decorator stack."""
    if name not in LIMITS:
        raise ValueError(f"unknown rate limit {name!r}")

    def decorate(f: F) -> F:
        _VIEWS[name] = f

        @wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            guarded = current_app.extensions[EXTENSION]["views"].get(name, f)
            return guarded(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def _storage(app: Flask) -> tuple[str, dict[str, Any]]:
    url = app.config.get("REDIS_URL") or ""
    if not url:
        return "memory://", {}
    # A dead Redis must not hang requests: short timeouts, then the in-memory fallback takes over.
    return url, {"socket_connect_timeout": 1.0, "socket_timeout": 1.0}


def _too_many(exc: RateLimitExceeded) -> Response:
    limiter: Limiter = current_app.extensions[EXTENSION]["limiter"]
    retry_after = 1
    current = limiter.current_limit
    if current is not None:
        try:
            # reset_at is a whole second, rounded up: never say more than the window itself.
            wait = math.ceil(current.reset_at - time.time())
            retry_after = max(1, min(wait, current.limit.get_expiry()))
        except Exception:  # the storage went away between the check and now
            log.warning("Could not read the rate-limit window", exc_info=True)
    body = error_body(
        429,
        "rate_limited",
        f"Too many requests: the limit is {exc.description}. Retry in {retry_after} s.",
    )
    response = jsonify(body)
    response.status_code = 429
    response.headers["Retry-After"] = str(retry_after)
    return response


def _limit_headers(response: Response) -> Response:
    """X-RateLimit-* on the answers of a limited endpoint (Flask-Limiter's own headers would also put a
    Retry-After on every 200, and override our 503's)."""
    limiter: Limiter | None = current_app.extensions.get(EXTENSION, {}).get("limiter")
    current = limiter.current_limit if limiter is not None else None
    if current is None:
        return response
    try:
        response.headers["X-RateLimit-Limit"] = str(current.limit.amount)
        response.headers["X-RateLimit-Remaining"] = str(current.remaining)
        response.headers["X-RateLimit-Reset"] = str(int(current.reset_at))
    except Exception:
        log.warning("Could not read the rate-limit window", exc_info=True)
    return response


def init_app(app: Flask) -> None:
    """A Limiter for ``app``, and each @rate_limited view wrapped with its configured limit."""
    storage_uri, storage_options = _storage(app)
    # Ours (RATE_LIMIT_ENABLED) and Flask-Limiter's own switch (RATELIMIT_ENABLED): either turns them off.
    enabled = bool(app.config["RATE_LIMIT_ENABLED"]) and bool(app.config.get("RATELIMIT_ENABLED", True))
    app.config["RATELIMIT_ENABLED"] = enabled  # Flask-Limiter reads it from the config first
    limiter = Limiter(
        key_func=client_ip,
        storage_uri=storage_uri,
        storage_options=storage_options,
        strategy="fixed-window",
        key_prefix=app.config["RATE_LIMIT_KEY_PREFIX"],
        headers_enabled=False,
        in_memory_fallback_enabled=bool(app.config.get("REDIS_URL")),
        enabled=enabled,
    )
    limiter.init_app(app)
    views: dict[str, Callable[..., Any]] = {}
    for name, setting in LIMITS.items():
        value = str(app.config.get(setting) or "").strip()
        if limiter.enabled and value and name in _VIEWS:
            views[name] = limiter.limit(value, key_func=KEY_FUNCS[name])(_VIEWS[name])
    app.extensions[EXTENSION] = {"limiter": limiter, "views": views}
    app.register_error_handler(RateLimitExceeded, _too_many)
    app.after_request(_limit_headers)
