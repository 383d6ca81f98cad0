"""The checks ``config.finalize`` runs: secrets strong enough outside tests, and operational settings
that would only fail later (rate-limit syntax, modes, bounds)."""

from __future__ import annotations

import secrets
from typing import Any

# Secrets that appear in docs, examples and tutorials: never acceptable outside tests.
KNOWN_WEAK_SECRETS = frozenset(
    {
        "",
        "dev",
        "development",
        "secret",
        "secret-key",
        "secretkey",
        "changeme",
        "change-me",
        "change_me",
        "please-change-me",
        "super-secret",
        "supersecret",
        "your-secret-key",
        "your_secret_key",
        "replace-me",
        "test",
        "testing",
        "admin",
        "admin-token",
        "admin_token",
        "admintoken",
        "your-admin-token",
    }
)
MIN_SECRET_LENGTH = 32
# bcrypt's work factor: 4 is its floor (tests use it for speed); anything below 10 is too cheap to guess.
MIN_BCRYPT_ROUNDS = 10
# A stolen token works until it expires: one day at the most.
MAX_JWT_EXPIRATION_MINUTES = 24 * 60
SYMMETRIC_JWT_ALGORITHMS = ("HS256", "HS384", "HS512")
SYMMETRIC_JWT_ALGORITHMS = ("HS256", "HS384", "HS512")
LOG_FORMATS = ("text", "json")
SQLITE_SYNCHRONOUS_MODES = ("NORMAL", "FULL", "EXTRA")


class ConfigError(RuntimeError):
    """The configuration is unusable; the message says which setting and why."""


def check_operations(config: dict[str, Any]) -> None:
    """Rate limits, the SQLite mode, logs, model management, proxies and Redis: refuse what would fail
    later."""
    from limits import parse_many

    # A window smaller than what one allowed request costs would refuse that request for ever.
    smallest_window = {
        "RATE_LIMIT_FORWARD": ("MAX_FILES_PER_REQUEST", "images"),
        "RATE_LIMIT_FORWARD_MEGAPIXELS": ("MAX_REQUEST_MEGAPIXELS", "megapixels"),
    }
    for name in sorted(config):
        if not name.startswith("RATE_LIMIT_") or name in ("RATE_LIMIT_ENABLED", "RATE_LIMIT_KEY_PREFIX"):
            continue
        value = str(config.get(name) or "")
        try:
            items = parse_many(value) if value.strip() else []
        except ValueError as exc:
            raise ConfigError(
                f"{name} must look like '10/minute' or '5/second;100/hour', got {value!r}"
            ) from exc
        if name in smallest_window and name in config:
            cap, unit = smallest_window[name]
            if cap in config and any(item.amount < int(config[cap]) for item in items):
                raise ConfigError(f"{name} must allow at least {cap} ({config[cap]}) {unit} in each window")
    if config["SQLITE_SYNCHRONOUS"] not in SQLITE_SYNCHRONOUS_MODES:
        raise ConfigError(
            f"SQLITE_SYNCHRONOUS must be one of {', '.join(SQLITE_SYNCHRONOUS_MODES)}, "
            f"got {config['SQLITE_SYNCHRONOUS']!r}"
        )
    if config["LOG_FORMAT"] not in LOG_FORMATS:
        raise ConfigError(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, got {config['LOG_FORMAT']!r}")
    for name in (
        "MAX_MODEL_WORKERS",
        "MAX_REQUEST_MEGAPIXELS",
        "FORWARD_CONCURRENCY",
        "FORWARD_USER_CONCURRENCY",
        "FORWARD_USER_MEGAPIXELS",
        "DATABASE_CONNECT_TIMEOUT",
    ):
        if int(config[name]) < 1:
            raise ConfigError(f"{name} must be at least 1, got {config[name]}")
    for name in ("FORWARD_QUEUE_TIMEOUT", "DATABASE_POOL_TIMEOUT"):
        if not 0 < float(config[name]) <= 60:
            raise ConfigError(f"{name} must be over 0 and at most 60 seconds, got {config[name]}")
    if int(config["TRUSTED_PROXIES"]) < 0:
        raise ConfigError("TRUSTED_PROXIES must be 0 or more")
    if int(config["HISTORY_EXPORT_MAX_ROWS"]) < 1 or int(config["HISTORY_RETENTION_DAYS"]) < 0:
        raise ConfigError("HISTORY_EXPORT_MAX_ROWS must be at least 1, HISTORY_RETENTION_DAYS 0 or more")
    redis_url = str(config.get("REDIS_URL") or "")
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"REDIS_URL must be a redis://, rediss:// or unix:// URL, got {redis_url!r}")


def check_secrets(config: dict[str, Any]) -> None:
    """Outside tests: SECRET_KEY strong; ADMIN_TOKEN, when set, strong and not SECRET_KEY again; bcrypt
    slow enough."""
    check_secret(config["SECRET_KEY"])
    admin_token = str(config.get("ADMIN_TOKEN") or "")
    if admin_token:  # unset: DELETE /history is refused
        check_secret(admin_token, "ADMIN_TOKEN")
        if admin_token == config["SECRET_KEY"]:
            raise ConfigError("ADMIN_TOKEN must not be SECRET_KEY: whoever holds it could sign tokens")
    if int(config["BCRYPT_ROUNDS"]) < MIN_BCRYPT_ROUNDS:
        raise ConfigError(
            f"BCRYPT_ROUNDS must be at least {MIN_BCRYPT_ROUNDS} outside tests (12 by default), "
            f"got {config['BCRYPT_ROUNDS']}"
        )


def check_secret(secret: str, name: str = "SECRET_KEY") -> None:
    """Refuse a missing, short, well-known or low-entropy secret (SECRET_KEY signs every JWT; ADMIN_TOKEN
    guards DELETE /history)."""
    hint = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'"
    if secret.strip().lower() in KNOWN_WEAK_SECRETS:
        raise ConfigError(f"{name} is unset or a well-known default; {hint}")
    if len(secret) < MIN_SECRET_LENGTH:
        raise ConfigError(f"{name} must be at least {MIN_SECRET_LENGTH} characters; {hint}")
    if len(set(secret)) < 10:
        raise ConfigError(f"{name} has too little variety to be random; {hint}")


def generate_secrets() -> dict[str, str]:
    """Fresh random values for SECRET_KEY and ADMIN_TOKEN."""
    return {"SECRET_KEY": secrets.token_urlsafe(48), "ADMIN_TOKEN": secrets.token_urlsafe(32)}
