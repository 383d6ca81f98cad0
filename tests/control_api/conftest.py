"""Fixtures for the control API tests, flaskr-style: ``app``, ``client``, ``runner`` and ``auth``.

``app`` runs once on SQLite and once on PostgreSQL when TEST_DATABASE_URL is set (a throwaway
``test_<random>`` database per session, so parallel runs never clash). It talks to a fake TorchServe
(``fake_ts``) for speed and fault injection; ``live_app`` talks to the real session TorchServe
(``torchserve`` from tests/conftest.py).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from apiflask import APIFlask
from flask.testing import FlaskClient, FlaskCliRunner

from control_api import create_app
from control_api.config import normalize_database_url
from control_api.extensions import MIGRATIONS_DIR, db
from control_api.tables import User
from launcher.databases import scratch_postgres_database
from tests.control_api.fake_torchserve import FakeTorchServe, running_fake

SECRET_KEY = secrets.token_urlsafe(48)
ADMIN_TOKEN = "admin-token-" + secrets.token_hex(16)
PASSWORD = "correct horse battery"
TABLES = (
    "audit_log",
    "history_rollup",
    "history",
    "users",
    "model_archives",
    "model_versions",
    "model_rollouts",
    "shadow_results",
)


def configured_pg_url() -> str | None:
    url = os.environ.get("TEST_DATABASE_URL")
    return normalize_database_url(url) if url else None


def scratch_pg_database(base_url: str) -> AbstractContextManager[str]:
    """A fresh, empty PostgreSQL database on TEST_DATABASE_URL's server, dropped afterwards."""
    return scratch_postgres_database(base_url, prefix="test")


def make_app(database_url: str, instance: Path, **overrides: Any) -> APIFlask:
    """The real app with test settings: fast bcrypt, throwaway secrets, an instance folder under tmp."""
    config = {
        "TESTING": True,
        "SECRET_KEY": SECRET_KEY,
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "BCRYPT_ROUNDS": 4,
        "INSTANCE_PATH": str(instance),
        "ADMIN_USERNAME": "",
        "ADMIN_PASSWORD": "",
        "TORCHSERVE_TIMEOUT": 30.0,
        # Off unless a test turns them on (tests log in far more often than 10 times a minute).
        "RATE_LIMIT_ENABLED": False,
        "REDIS_URL": "",
    }
    config.update(overrides)
    return create_app(config)


def migrate_up(app: APIFlask) -> None:
    from flask_migrate import upgrade

    with app.app_context():
        upgrade(directory=str(MIGRATIONS_DIR))


@pytest.fixture(scope="session")
def pg_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One migrated PostgreSQL database for the session (tables are emptied before each test)."""
    base = configured_pg_url()
    if not base:
        pytest.skip("TEST_DATABASE_URL is not set")
    with scratch_pg_database(base) as url:
        app = make_app(url, tmp_path_factory.mktemp("pg_instance"))
        migrate_up(app)
        with app.app_context():
            db.engine.dispose()
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database with the schema: a fresh SQLite file, or the emptied session PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'control_api.db'}"
    url: str = request.getfixturevalue("pg_database")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY"))
    engine.dispose()
    return url


@contextmanager
def app_on(database_url: str, instance: Path, **overrides: Any) -> Iterator[APIFlask]:
    """An app on ``database_url``; SQLite gets its schema here (PostgreSQL's comes from migrations)."""
    app = make_app(database_url, instance, **overrides)
    with app.app_context():
        if database_url.startswith("sqlite"):
            db.create_all()
    try:
        yield app
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def fake_ts(tmp_path: Path) -> Iterator[FakeTorchServe]:
    with running_fake(tmp_path / "fake_torchserve") as fake:
        yield fake


def torchserve_settings(ts: Any) -> dict[str, Any]:
    return {
        "TORCHSERVE_INFERENCE_URL": ts.inference_url,
        "TORCHSERVE_MANAGEMENT_URL": ts.management_url,
        "TORCHSERVE_KEY_FILE": str(ts.key_file),
    }


@pytest.fixture
def app(database_url: str, fake_ts: FakeTorchServe, tmp_path: Path) -> Iterator[APIFlask]:
    with app_on(database_url, tmp_path / "instance", **torchserve_settings(fake_ts)) as app:
        yield app


@pytest.fixture
def live_app(database_url: str, torchserve: Any, tmp_path: Path) -> Iterator[APIFlask]:
    """The app in front of the real TorchServe."""
    with app_on(database_url, tmp_path / "instance", **torchserve_settings(torchserve)) as app:
        yield app


@pytest.fixture
def client(app: APIFlask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: APIFlask) -> FlaskCliRunner:
    return app.test_cli_runner()


def assert_error(response: Any, status: int, slug: str | None = None) -> dict[str, Any]:
    """The response is ``status`` with our error shape (and ``slug``, when given); returns its body."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:300])
    body = response.get_json()
    assert isinstance(body, dict) and set(body) >= {"error", "message"}, body
    assert isinstance(body["message"], str), body
    if slug:
        assert body["error"] == slug, body
    return body


class AuthActions:
    """Register, log in and build Authorization headers."""

    def __init__(self, client: FlaskClient) -> None:
        self._client = client
        self.app = client.application

    def register(self, username: str = "alice", password: str = PASSWORD) -> Any:
        return self._client.post("/register", json={"username": username, "password": password})

    def login(self, username: str = "alice", password: str = PASSWORD) -> Any:
        return self._client.post("/token", data={"username": username, "password": password})

    def token(self, username: str = "alice", password: str = PASSWORD, admin: bool = False) -> str:
        """A token for ``username``, creating the user (as admin if asked) when needed."""
        with self.app.app_context():
            user = db.session.scalar(sa.select(User).where(User.username == username))
            if user is None:
                user = User(username=username, is_admin=admin)
                user.set_password(password)
                db.session.add(user)
                db.session.commit()
        response = self.login(username, password)
        assert response.status_code == 200, response.get_json()
        token: str = response.get_json()["access_token"]
        return token

    def headers(self, username: str = "alice", admin: bool = False) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(username, admin=admin)}"}

    def admin_headers(self) -> dict[str, str]:
        return self.headers("admin", admin=True)


@pytest.fixture
def auth(client: FlaskClient) -> AuthActions:
    return AuthActions(client)
