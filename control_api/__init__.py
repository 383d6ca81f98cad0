"""The control API: users, JWTs, /forward to TorchServe, request history and statistics, model management,
audit log, rate limits, Prometheus metrics and request IDs.

``create_app(test_config=None)`` builds the app. Settings come from the environment, then from
``instance/secrets.env`` for what the environment leaves unset, then from ``test_config``. The database
schema is managed by Flask-Migrate (``flask --app control_api db upgrade``), never from here.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from apiflask import APIFlask
from flask import request
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from werkzeug.middleware.proxy_fix import ProxyFix

from . import config as settings
from .errors import ERROR_SCHEMA, register_error_handlers
from .extensions import db, init_sqlite, jwt, migrate, torchserve
from .logs import configure_logging

__all__ = ["create_app"]

log = logging.getLogger(__name__)
# Bodies of the JSON and form endpoints; /forward's uploads have their own, larger limit.
SMALL_BODY_LIMIT = 1024 * 1024


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


def _openapi(app: APIFlask) -> None:
    app.config["SECURITY_SCHEMES"] = {
        "BearerAuth": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "from POST /token",
        }
    }
    app.config["HTTP_ERROR_SCHEMA"] = ERROR_SCHEMA
    app.config["VALIDATION_ERROR_SCHEMA"] = ERROR_SCHEMA
    app.config["DESCRIPTION"] = (
        "Image classification (ResNet50 on TorchServe). Register, get a token from /token, send images to "
        '/forward. Every error is JSON: {"error": "<slug>", "message": "<text>"}.'
    )


def _bootstrap_admin(app: APIFlask) -> None:
    """ADMIN_USERNAME/ADMIN_PASSWORD: create that admin if absent (once the schema exists), audited."""
    from .audit import add_row
    from .auth import find_user
    from .models import User
    from .schemas import USERNAME_RE

    username, password = app.config.get("ADMIN_USERNAME"), app.config.get("ADMIN_PASSWORD")
    if not username or not password:
        return
    if not re.match(USERNAME_RE, username) or not 8 <= len(password) <= 128:
        raise settings.ConfigError(
            "ADMIN_USERNAME must be 3-64 of [A-Za-z0-9_.-], ADMIN_PASSWORD 8-128 characters"
        )
    with app.app_context():
        try:
            if not sa.inspect(db.engine).has_table("users"):
                log.info("No users table yet (run `flask db upgrade`): admin %r not created", username)
                return
            existing = find_user(username)
            if existing is None:
                user = User(username=username, is_admin=True)
                user.set_password(password)
                db.session.add(user)
                db.session.flush()
                add_row(
                    "admin.create",
                    "system",
                    target=username,
                    details={"source": "ADMIN_USERNAME", "user_id": user.id},
                    status_code=201,
                    success=True,
                )
                db.session.commit()  # the admin and its audit row, together
                log.info("Created admin %r from ADMIN_USERNAME", username)
            elif not existing.is_admin:
                # Someone registered that name first: never grant admin to a password we did not set.
                log.warning("ADMIN_USERNAME %r is an existing non-admin user; not promoted", username)
        except IntegrityError:
            db.session.rollback()  # another gunicorn worker created it first
        except SQLAlchemyError:
            db.session.rollback()
            log.exception("Could not create admin %r", username)
        finally:
            db.session.remove()


def create_app(test_config: Mapping[str, Any] | None = None) -> APIFlask:
    """Application factory."""
    # INSTANCE_PATH (test_config or environment): where the default SQLite file and key file live.
    instance_path = (test_config or {}).get("INSTANCE_PATH") or os.environ.get("INSTANCE_PATH")
    app = APIFlask(
        __name__,
        title="Image classification control API",
        version="1.0.0",
        instance_path=os.path.abspath(instance_path) if instance_path else None,
    )
    os.makedirs(app.instance_path, exist_ok=True)
    env = {**read_env_file(Path(app.instance_path) / "secrets.env"), **os.environ}
    config = settings.from_env(app.instance_path, env)
    config.update(test_config or {})
    settings.finalize(config)
    app.config.update(config)
    _openapi(app)

    if int(app.config["TRUSTED_PROXIES"]) > 0:
        # Behind N reverse proxies: the client address (per-IP limits, logs) from X-Forwarded-For.
        n = int(app.config["TRUSTED_PROXIES"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]
    if not app.config.get("TESTING"):
        configure_logging(app.config["LOG_FORMAT"], app.config["LOG_LEVEL"])

    db.init_app(app)
    init_sqlite(app)
    migrate.init_app(app, db)
    jwt.init_app(app)
    torchserve.init_app(app)
    register_error_handlers(app)

    from . import audit, auth, health, history, inference, management, metrics, observability, ratelimit
    from .cli import register_commands

    app.request_class = inference.UploadRequest
    observability.init_app(app)  # first: every later hook, view and log line sees the request ID
    for module in (auth, inference, history, management, audit, health, metrics):
        app.register_blueprint(module.bp)
    ratelimit.init_app(app)  # after the views' modules are imported: it wraps their @rate_limited views
    register_commands(app)

    @app.before_request
    def _small_bodies() -> None:
        if request.endpoint != "inference.forward":
            request.max_content_length = SMALL_BODY_LIMIT

    _bootstrap_admin(app)
    return app
