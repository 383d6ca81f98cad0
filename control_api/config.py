"""Configuration: defaults, read from the environment, then checked.

Every setting can come from an environment variable of the same name, or from ``instance/secrets.env``
for what the environment leaves unset. ``create_app(test_config)`` applies ``test_config`` last, so tests
can override anything.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from .config_checks import (
    MAX_JWT_EXPIRATION_MINUTES,
    SYMMETRIC_JWT_ALGORITHMS,
    ConfigError,
    check_operations,
    check_secrets,
    generate_secrets,
)

__all__ = ["ConfigError", "finalize", "from_env", "generate_secrets", "normalize_database_url"]

REPO_ROOT = Path(__file__).resolve().parent.parent
MULTIPART_ENVELOPE_BYTES = 64 * 1024


T = TypeVar("T", int, float)


def _env_number(env: Mapping[str, str], name: str, default: T, cast: Callable[[str], T], kind: str) -> T:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return cast(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be {kind}, got {raw!r}") from exc


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    return _env_number(env, name, default, int, "an integer")


def _env_float(env: Mapping[str, str], name: str, default: float) -> float:
    return _env_number(env, name, default, float, "a number")


def _env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (as scripts/init_secrets.sh writes them); comments and blank lines skipped."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, value = line.split("=", 1)
        values[name.strip()] = value.strip().strip("'\"")
    return values


def normalize_database_url(url: str) -> str:
    """Use the psycopg 3 driver for PostgreSQL URLs given without one (``postgresql://``, ``postgres://``)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def from_env(instance_path: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Build the settings dict from ``env`` (default: ``os.environ``)."""
    env = os.environ if env is None else env
    instance = Path(instance_path)
    max_upload_mb = _env_int(env, "MAX_UPLOAD_MB", 20)
    jwt_minutes = _env_int(env, "JWT_EXPIRATION_MINUTES", 30)
    return {
        "SECRET_KEY": env.get("SECRET_KEY", ""),
        "ADMIN_TOKEN": env.get("ADMIN_TOKEN", ""),
        "ADMIN_USERNAME": env.get("ADMIN_USERNAME", ""),
        "ADMIN_PASSWORD": env.get("ADMIN_PASSWORD", ""),
        "SQLALCHEMY_DATABASE_URI": env.get("DATABASE_URL") or f"sqlite:///{instance / 'control_api.db'}",
        "SQLITE_SYNCHRONOUS": env.get("SQLITE_SYNCHRONOUS", "NORMAL").strip().upper(),
        "JWT_ALGORITHM": env.get("JWT_ALGORITHM", "HS256"),
        "JWT_EXPIRATION_MINUTES": jwt_minutes,
        "BCRYPT_ROUNDS": _env_int(env, "BCRYPT_ROUNDS", 12),
        "TORCHSERVE_INFERENCE_URL": env.get("TORCHSERVE_INFERENCE_URL", "http://127.0.0.1:8080").rstrip("/"),
        "TORCHSERVE_MANAGEMENT_URL": env.get("TORCHSERVE_MANAGEMENT_URL", "http://127.0.0.1:8081").rstrip(
            "/"
        ),
        "TORCHSERVE_KEY_FILE": env.get("TORCHSERVE_KEY_FILE")
        or str(instance / "torchserve" / "key_file.json"),
        "TORCHSERVE_TIMEOUT": _env_float(env, "TORCHSERVE_TIMEOUT", 30.0),
        "TORCHSERVE_CONNECT_TIMEOUT": _env_float(env, "TORCHSERVE_CONNECT_TIMEOUT", 3.0),
        "TORCHSERVE_PARALLEL": _env_int(env, "TORCHSERVE_PARALLEL", 8),
        "DEFAULT_MODEL": env.get("DEFAULT_MODEL", "resnet50"),
        "MAX_UPLOAD_MB": max_upload_mb,
        "MAX_FILES_PER_REQUEST": _env_int(env, "MAX_FILES_PER_REQUEST", 32),
        "RETRY_AFTER_SECONDS": _env_int(env, "RETRY_AFTER_SECONDS", 5),
        # Hostile load: the pixels one request may declare, and /forward's share of each worker process.
        "MAX_REQUEST_MEGAPIXELS": _env_int(env, "MAX_REQUEST_MEGAPIXELS", 256),
        "FORWARD_CONCURRENCY": _env_int(env, "FORWARD_CONCURRENCY", 6),
        "FORWARD_USER_CONCURRENCY": _env_int(env, "FORWARD_USER_CONCURRENCY", 4),
        "FORWARD_USER_MEGAPIXELS": _env_int(env, "FORWARD_USER_MEGAPIXELS", 64),
        "FORWARD_QUEUE_TIMEOUT": _env_float(env, "FORWARD_QUEUE_TIMEOUT", 5.0),
        # The database: how long to wait for a connection, then for a free one from the pool.
        "DATABASE_CONNECT_TIMEOUT": _env_int(env, "DATABASE_CONNECT_TIMEOUT", 5),
        "DATABASE_POOL_TIMEOUT": _env_float(env, "DATABASE_POOL_TIMEOUT", 5.0),
        # Model management: synchronous registration and scaling wait for workers to load.
        "MODEL_STORE": env.get("MODEL_STORE") or str(REPO_ROOT / "model_store"),
        "TORCHSERVE_MANAGEMENT_TIMEOUT": _env_float(env, "TORCHSERVE_MANAGEMENT_TIMEOUT", 180.0),
        "MAX_MODEL_WORKERS": _env_int(env, "MAX_MODEL_WORKERS", 16),
        "MAX_ARCHIVE_MB": _env_int(env, "MAX_ARCHIVE_MB", 1024),
        # Rollout: how long a worker may serve a cached traffic policy; the shadow queue's bound.
        "ROLLOUT_CACHE_SECONDS": _env_float(env, "ROLLOUT_CACHE_SECONDS", 1.0),
        "SHADOW_QUEUE_SIZE": _env_int(env, "SHADOW_QUEUE_SIZE", 16),
        # How often one gunicorn worker puts TorchServe back in the desired state (0: never).
        "RECONCILE_SECONDS": _env_float(env, "RECONCILE_SECONDS", 15.0),
        # Rate limits (Flask-Limiter syntax, e.g. "10/minute;100/hour"; empty: no limit there).
        "REDIS_URL": env.get("REDIS_URL", ""),
        "RATE_LIMIT_ENABLED": _env_bool(env, "RATE_LIMIT_ENABLED", True),
        "RATE_LIMIT_TOKEN": env.get("RATE_LIMIT_TOKEN", "10/minute"),
        "RATE_LIMIT_REGISTER": env.get("RATE_LIMIT_REGISTER", "5/minute"),
        "RATE_LIMIT_TOKEN_USERNAME": env.get("RATE_LIMIT_TOKEN_USERNAME", "10/minute;50/hour"),
        # /forward per user: images (a request of 8 files costs 8), and megapixels as the headers declare.
        "RATE_LIMIT_FORWARD": env.get("RATE_LIMIT_FORWARD", "240/minute"),
        "RATE_LIMIT_FORWARD_MEGAPIXELS": env.get("RATE_LIMIT_FORWARD_MEGAPIXELS", "2000/minute"),
        "RATE_LIMIT_FORWARD_ANONYMOUS": env.get("RATE_LIMIT_FORWARD_ANONYMOUS", "30/minute"),
        "RATE_LIMIT_PASSWORD_CHANGE": env.get("RATE_LIMIT_PASSWORD_CHANGE", "5/minute;20/hour"),
        "RATE_LIMIT_ACCOUNT_DELETE": env.get("RATE_LIMIT_ACCOUNT_DELETE", "5/minute;20/hour"),
        "RATE_LIMIT_KEY_PREFIX": env.get("RATE_LIMIT_KEY_PREFIX", "control_api"),
        # Reverse proxies in front of the API whose X-Forwarded-For is trusted (per-IP limits, logs).
        "TRUSTED_PROXIES": _env_int(env, "TRUSTED_PROXIES", 0),
        # Observability.
        "LOG_FORMAT": env.get("LOG_FORMAT", "text").strip().lower(),
        "LOG_LEVEL": env.get("LOG_LEVEL", "INFO").strip().upper(),
        "METRICS_TOKEN": env.get("METRICS_TOKEN", ""),
        # History: the most rows one CSV export streams; rows older than this many days are purged
        # (flask --app control_api purge-history; 0 keeps them all).
        "HISTORY_EXPORT_MAX_ROWS": _env_int(env, "HISTORY_EXPORT_MAX_ROWS", 1_000_000),
        "HISTORY_RETENTION_DAYS": _env_int(env, "HISTORY_RETENTION_DAYS", 0),
        # The dashboard's cookie only over HTTPS (set it behind a TLS-terminating proxy).
        "DASHBOARD_COOKIE_SECURE": _env_bool(env, "DASHBOARD_COOKIE_SECURE", False),
    }


def finalize(config: dict[str, Any]) -> None:
    """Derive the Flask/extension settings from ours and refuse unusable values."""
    config["SQLALCHEMY_DATABASE_URI"] = normalize_database_url(config["SQLALCHEMY_DATABASE_URI"])
    if config["JWT_ALGORITHM"] not in SYMMETRIC_JWT_ALGORITHMS:
        raise ConfigError(
            f"JWT_ALGORITHM must be one of {', '.join(SYMMETRIC_JWT_ALGORITHMS)} (tokens are signed with "
            f"SECRET_KEY), got {config['JWT_ALGORITHM']!r}"
        )
    if not 4 <= int(config["BCRYPT_ROUNDS"]) <= 31:
        raise ConfigError("BCRYPT_ROUNDS must be between 4 and 31")
    if not 1 <= int(config["JWT_EXPIRATION_MINUTES"]) <= MAX_JWT_EXPIRATION_MINUTES:
        raise ConfigError(
            f"JWT_EXPIRATION_MINUTES must be between 1 and {MAX_JWT_EXPIRATION_MINUTES} (24 hours), "
            f"got {config['JWT_EXPIRATION_MINUTES']}"
        )
    if int(config["MAX_UPLOAD_MB"]) < 1:
        raise ConfigError("MAX_UPLOAD_MB must be at least 1")
    if not config.get("TESTING"):
        check_secrets(config)
    check_operations(config)
    # The upload limit (body_limits.py checks it): the files together, and the whole body, which adds a
    # multipart envelope (boundaries, part headers, the top_k/model fields) on top of the files.
    config["MAX_UPLOAD_BYTES"] = int(config["MAX_UPLOAD_MB"]) * 1024 * 1024
    config["MAX_CONTENT_LENGTH"] = config["MAX_UPLOAD_BYTES"] + MULTIPART_ENVELOPE_BYTES
    if int(config["MAX_ARCHIVE_MB"]) < 1:
        raise ConfigError("MAX_ARCHIVE_MB must be at least 1")
    config["MAX_ARCHIVE_CONTENT_LENGTH"] = (
        int(config["MAX_ARCHIVE_MB"]) * 1024 * 1024 + MULTIPART_ENVELOPE_BYTES
    )
    config["JWT_SECRET_KEY"] = config["SECRET_KEY"]
    # Decode with exactly the one algorithm we sign with: no "none", no RS/HS confusion.
    config["JWT_DECODE_ALGORITHMS"] = [config["JWT_ALGORITHM"]]
    config["JWT_ACCESS_TOKEN_EXPIRES"] = timedelta(minutes=int(config["JWT_EXPIRATION_MINUTES"]))
    config["JWT_TOKEN_LOCATION"] = ["headers"]
    config["JWT_HEADER_TYPE"] = "Bearer"
    config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(
        config["SQLALCHEMY_DATABASE_URI"],
        connect_timeout=int(config["DATABASE_CONNECT_TIMEOUT"]),
        pool_timeout=float(config["DATABASE_POOL_TIMEOUT"]),
    )


def engine_options(url: str, connect_timeout: int = 5, pool_timeout: float = 5.0) -> dict[str, Any]:
    """Pool and driver options per backend.

    PostgreSQL: an unreachable server costs a request at most ``connect_timeout`` (the driver's) and a
    pool with every connection taken at most ``pool_timeout``; then the request answers 503
    ``database_unavailable`` (errors.py), and the next one tries again (``pool_pre_ping``).

    ``hide_parameters``: a statement's values (a bcrypt hash, a username) never appear in the text of a
    database error, so a logged IntegrityError or OperationalError cannot leak them.
    """
    if url.startswith("sqlite"):
        # The driver-level timeout is SQLite's busy timeout: writers wait for the lock instead of failing.
        return {"connect_args": {"timeout": 30}, "hide_parameters": True}
    return {
        "pool_pre_ping": True,
        "pool_size": 10,
        "max_overflow": 10,
        "pool_recycle": 1800,
        "pool_timeout": pool_timeout,
        "connect_args": {"connect_timeout": connect_timeout},
        "hide_parameters": True,
    }
