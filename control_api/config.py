"""Configuration: defaults, read from the environment, then checked.

Every setting can come from an environment variable of the same name, or from ``instance/secrets.env``
for what the environment leaves unset. ``create_app(test_config)`` applies ``test_config`` last, so tests
can override anything.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

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
REPO_ROOT = Path(__file__).resolve().parent.parent
LOG_FORMATS = ("text", "json")
SQLITE_SYNCHRONOUS_MODES = ("NORMAL", "FULL", "EXTRA")
MULTIPART_ENVELOPE_BYTES = 64 * 1024


class ConfigError(RuntimeError):
    """The configuration is unusable; the message says which setting and why."""


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
        "RATE_LIMIT_FORWARD": env.get("RATE_LIMIT_FORWARD", "120/minute"),
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
        _check_secrets(config)
    _check_operations(config)
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
    config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(config["SQLALCHEMY_DATABASE_URI"])


def _check_operations(config: dict[str, Any]) -> None:
    """Rate limits, the SQLite mode, logs, model management, proxies and Redis: refuse what would fail
    later."""
    from limits import parse_many

    for name in ("RATE_LIMIT_TOKEN", "RATE_LIMIT_REGISTER", "RATE_LIMIT_FORWARD"):
        value = str(config.get(name) or "")
        try:
            if value.strip():
                parse_many(value)
        except ValueError as exc:
            raise ConfigError(
                f"{name} must look like '10/minute' or '5/second;100/hour', got {value!r}"
            ) from exc
    if config["SQLITE_SYNCHRONOUS"] not in SQLITE_SYNCHRONOUS_MODES:
        raise ConfigError(
            f"SQLITE_SYNCHRONOUS must be one of {', '.join(SQLITE_SYNCHRONOUS_MODES)}, "
            f"got {config['SQLITE_SYNCHRONOUS']!r}"
        )
    if config["LOG_FORMAT"] not in LOG_FORMATS:
        raise ConfigError(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, got {config['LOG_FORMAT']!r}")
    if int(config["MAX_MODEL_WORKERS"]) < 1:
        raise ConfigError("MAX_MODEL_WORKERS must be at least 1")
    if int(config["TRUSTED_PROXIES"]) < 0:
        raise ConfigError("TRUSTED_PROXIES must be 0 or more")
    if int(config["HISTORY_EXPORT_MAX_ROWS"]) < 1 or int(config["HISTORY_RETENTION_DAYS"]) < 0:
        raise ConfigError("HISTORY_EXPORT_MAX_ROWS must be at least 1, HISTORY_RETENTION_DAYS 0 or more")
    redis_url = str(config.get("REDIS_URL") or "")
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"REDIS_URL must be a redis://, rediss:// or unix:// URL, got {redis_url!r}")


def _check_secrets(config: dict[str, Any]) -> None:
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


def engine_options(url: str) -> dict[str, Any]:
    """Pool and driver options per backend.

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
        "hide_parameters": True,
    }


def generate_secrets() -> dict[str, str]:
    """Fresh random values for SECRET_KEY and ADMIN_TOKEN."""
    return {"SECRET_KEY": secrets.token_urlsafe(48), "ADMIN_TOKEN": secrets.token_urlsafe(32)}
