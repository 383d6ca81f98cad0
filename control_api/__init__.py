"""The control API: users, JWTs, /forward to TorchServe, request history and statistics, model management,
audit log, rate limits, Prometheus metrics and request IDs. One package per feature (README.md,
"Where things are").

``create_app(test_config=None)`` builds the app. Settings come from the environment, then from
``instance/secrets.env`` for what the environment leaves unset, then from ``test_config``. The database
schema is managed by Flask-Migrate (``flask --app control_api db upgrade``), never from here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from apiflask import APIFlask
from werkzeug.middleware.proxy_fix import ProxyFix

from . import api_docs, openapi
from . import config as settings
from .errors import register_error_handlers
from .extensions import db, init_sqlite, jwt, migrate, torchserve
from .ops.logs import configure_logging

__all__ = ["create_app"]


def create_app(test_config: Mapping[str, Any] | None = None) -> APIFlask:
    """Application factory."""
    # INSTANCE_PATH (test_config or environment): where the default SQLite file and key file live.
    instance_path = (test_config or {}).get("INSTANCE_PATH") or os.environ.get("INSTANCE_PATH")
    app = APIFlask(
        __name__,
        title=openapi.TITLE,
        version=openapi.VERSION,
        instance_path=os.path.abspath(instance_path) if instance_path else None,
    )
    os.makedirs(app.instance_path, exist_ok=True)
    env = {**settings.read_env_file(Path(app.instance_path) / "secrets.env"), **os.environ}
    config = settings.from_env(app.instance_path, env)
    config.update(test_config or {})
    settings.finalize(config)
    app.config.update(config)
    openapi.configure(app)
    api_docs.configure(app)

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

    from . import body_limits, rate_limits
    from .audit import routes as audit_routes
    from .auth import admins
    from .auth import routes as auth_routes
    from .dashboard import routes as dashboard_routes
    from .dashboard import session as dashboard_session
    from .forward import capacity as forward_capacity
    from .forward import routes as forward_routes
    from .forward.uploads import UploadRequest
    from .me import routes as me_routes
    from .model_admin import archives as archive_routes
    from .model_admin import compare as compare_routes
    from .model_admin import reconciler, rollout_routes
    from .model_admin import routes as model_routes
    from .ops import health_routes, metrics_routes, request_tracking
    from .records import retention
    from .records import routes as records_routes
    from .users import routes as users_routes

    app.request_class = UploadRequest
    request_tracking.init_app(app)  # first: every later hook, view and log line sees the request ID
    body_limits.init_app(app)
    forward_capacity.init_app(app)
    blueprints = (
        auth_routes,
        me_routes,
        forward_routes,
        records_routes,
        archive_routes,
        rollout_routes,
        compare_routes,
        model_routes,
        audit_routes,
        users_routes,
    )
    for module in (*blueprints, health_routes, metrics_routes, api_docs, dashboard_routes):
        app.register_blueprint(module.bp)
    dashboard_session.configure(app)
    rate_limits.init_app(app)  # after the views' modules are imported: it wraps their @rate_limited views
    app.cli.add_command(admins.create_admin_command)
    app.cli.add_command(retention.purge_history_command)
    app.cli.add_command(reconciler.reconcile_command)
    admins.bootstrap_admin(app)
    return app
