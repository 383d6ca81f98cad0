"""Rate limits with Flask-Limiter: who may ask how often, and at what cost.

Limits are settings in Flask-Limiter's syntax (e.g. ``10/minute;100/hour``; empty turns one off;
``RATE_LIMIT_ENABLED=false`` turns them all off), each counted per key (``rate_limit_keys``):

- ``RATE_LIMIT_TOKEN`` and ``RATE_LIMIT_REGISTER`` per client address, ``RATE_LIMIT_TOKEN_USERNAME``
  per username a login names (guessing one account's password from many addresses);
- ``RATE_LIMIT_FORWARD`` per user, counted in images: a request of 8 files costs 8;
- ``RATE_LIMIT_FORWARD_MEGAPIXELS`` per user, counted in the megapixels the images' headers declare;
- ``RATE_LIMIT_FORWARD_ANONYMOUS`` per address, for /forward calls without a valid token;
- ``RATE_LIMIT_PASSWORD_CHANGE`` and ``RATE_LIMIT_ACCOUNT_DELETE`` per user (each checks a password).

Counters live in Redis when ``REDIS_URL`` is set, so every gunicorn worker (and every API container)
shares them; otherwise in each process's memory, which is per worker: good enough for one process, N
times too generous with N workers. If Redis goes away, the limiter falls back to memory (logged) instead
of failing the requests, and goes back to Redis when it answers again.

A limit is checked where the view says: ``@rate_limited(name)`` in its decorator stack, or
``enforce(name, cost)`` inside it once the cost is known (images, pixels). Each limit guards a no-op
checkpoint of its own name, which Flask-Limiter counts on each call. For /forward that is inside
``recorded`` and after ``token_required``, so a refused request is in the history with its user.

Over a limit: 429 in our error shape, with ``Retry-After`` (seconds until the window resets) and the
``X-RateLimit-Limit/Remaining/Reset`` headers, which every limited endpoint's answers carry.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, Response, current_app, g, jsonify
from flask_limiter import Limiter, RateLimitExceeded

from .errors import error_body
from .rate_limit_keys import client_ip, current_user_key, login_name

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
EXTENSION = "rate_limits"


@dataclass(frozen=True)
class Limit:
    """A named limit: the setting holding its value and what it counts per."""

    setting: str
    key: Callable[[], str]


LIMITS = {
    "token": Limit("RATE_LIMIT_TOKEN", client_ip),
    "token_username": Limit("RATE_LIMIT_TOKEN_USERNAME", login_name),
    "register": Limit("RATE_LIMIT_REGISTER", client_ip),
    "forward": Limit("RATE_LIMIT_FORWARD", current_user_key),
    "forward_megapixels": Limit("RATE_LIMIT_FORWARD_MEGAPIXELS", current_user_key),
    "forward_anonymous": Limit("RATE_LIMIT_FORWARD_ANONYMOUS", client_ip),
    "password_change": Limit("RATE_LIMIT_PASSWORD_CHANGE", current_user_key),
    "account_delete": Limit("RATE_LIMIT_ACCOUNT_DELETE", current_user_key),
}
SETTINGS = tuple(limit.setting for limit in LIMITS.values())


def _cost(name: str) -> Callable[[], int]:
    def cost() -> int:
        costs: dict[str, int] = g.get("rate_limit_costs") or {}
        return costs.get(name, 1)

    return cost


def rate_limited(*names: str) -> Callable[[F], F]:
    """Check the ``names`` limits (see LIMITS), each costing 1, where this decorator sits in the view's
    decorator stack."""
    unknown = [name for name in names if name not in LIMITS]
    if unknown:
        raise ValueError(f"unknown rate limits {unknown!r}")

    def decorate(f: F) -> F:
        @wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for name in names:
                enforce(name)
            return f(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def _checkpoint(name: str) -> Callable[[], None]:
    """A no-op of its own name (Flask-Limiter keeps limits by function name), which the limit guards."""

    def checkpoint() -> None:
        return None

    checkpoint.__name__ = checkpoint.__qualname__ = f"limit_{name}"
    checkpoint.__module__ = __name__
    return checkpoint


def enforce(name: str, cost: int = 1) -> None:
    """Count ``cost`` against the ``name`` limit now: 429 (RateLimitExceeded) when that is over it."""
    if name not in LIMITS:
        raise ValueError(f"unknown rate limit {name!r}")
    guarded = current_app.extensions[EXTENSION]["views"].get(name)
    if guarded is None:  # that limit is off
        return
    g.setdefault("rate_limit_costs", {})[name] = max(1, int(cost))
    guarded()
    limiter: Limiter = current_app.extensions[EXTENSION]["limiter"]
    g.setdefault("rate_limits_seen", []).extend(limiter.current_limits)


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
        g.setdefault("rate_limits_seen", []).append(current)  # the breached one: its headers go out
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
    """X-RateLimit-* on the answers of a limited endpoint, for the limit with the fewest calls left
    (Flask-Limiter's own headers would also put a Retry-After on every 200, and override our 503's)."""
    seen = g.get("rate_limits_seen") or []
    if not seen:
        return response
    try:
        current = min(seen, key=lambda limit: limit.remaining)  # the one the client is closest to
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
    views: dict[str, Callable[[], None]] = {}
    for name, limit in LIMITS.items():
        value = str(app.config.get(limit.setting) or "").strip()
        if limiter.enabled and value:
            views[name] = limiter.limit(value, key_func=limit.key, scope=name, cost=_cost(name))(
                _checkpoint(name)
            )
    app.extensions[EXTENSION] = {"limiter": limiter, "views": views}
    app.register_error_handler(RateLimitExceeded, _too_many)
    app.after_request(_limit_headers)
