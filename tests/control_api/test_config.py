"""Configuration: secrets, defaults (bcrypt work factor 12), environment parsing, the admin bootstrap."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from control_api import create_app
from control_api.config import ConfigError, from_env, generate_secrets, normalize_database_url, read_env_file
from control_api.extensions import db
from control_api.tables import User
from tests.control_api.conftest import PASSWORD, app_on

STRONG = secrets.token_urlsafe(48)
ENV_NAMES = (
    "SECRET_KEY",
    "ADMIN_TOKEN",
    "JWT_EXPIRATION_MINUTES",
    "BCRYPT_ROUNDS",
    "DATABASE_URL",
    "ADMIN_USERNAME",
    "ADMIN_PASSWORD",
    "JWT_ALGORITHM",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


def _production_app(tmp_path: Path, **config: object):
    """create_app as gunicorn runs it: no TESTING, settings from the environment."""
    return create_app({"INSTANCE_PATH": str(tmp_path / "instance"), **config})


@pytest.mark.parametrize(
    "secret",
    ["", "dev", "changeme", "secret", "SuperSecret", "short-but-random-Xy7", "a" * 64, "ab" * 32, "  dev  "],
)
def test_weak_secret_refused_outside_tests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    monkeypatch.setenv("SECRET_KEY", secret)
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        _production_app(tmp_path)


def test_missing_secret_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        _production_app(tmp_path)


def test_production_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real defaults: bcrypt work factor 12 (tests elsewhere lower it), SQLite under instance/, HS256."""
    monkeypatch.setenv("SECRET_KEY", STRONG)
    app = _production_app(tmp_path)
    assert app.config["BCRYPT_ROUNDS"] == 12
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'instance' / 'control_api.db'}"
    assert app.config["JWT_ALGORITHM"] == "HS256" and app.config["JWT_DECODE_ALGORITHMS"] == ["HS256"]
    assert app.config["JWT_ACCESS_TOKEN_EXPIRES"].total_seconds() == 30 * 60
    assert app.config["MAX_UPLOAD_MB"] == 20
    assert app.config["TORCHSERVE_INFERENCE_URL"] == "http://127.0.0.1:8080"
    assert app.config["TORCHSERVE_KEY_FILE"] == str(tmp_path / "instance" / "torchserve" / "key_file.json")
    with app.app_context():
        db.create_all()
        response = app.test_client().post("/register", json={"username": "alice", "password": PASSWORD})
        assert response.status_code == 201
        stored = db.session.scalar(sa.select(User.password_hash).where(User.username == "alice"))
        db.engine.dispose()
    assert stored is not None and stored.startswith("$2b$12$"), stored


def test_secrets_file_fills_what_the_environment_leaves_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance = tmp_path / "instance"
    instance.mkdir()
    file_secret, file_token = secrets.token_urlsafe(48), secrets.token_urlsafe(32)
    (instance / "secrets.env").write_text(
        f"# generated\nSECRET_KEY={file_secret}\nADMIN_TOKEN={file_token}\n"
    )
    app = _production_app(tmp_path)
    assert app.config["SECRET_KEY"] == file_secret and app.config["ADMIN_TOKEN"] == file_token
    monkeypatch.setenv("SECRET_KEY", STRONG)
    assert _production_app(tmp_path).config["SECRET_KEY"] == STRONG


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://postgres@127.0.0.1:5432/test", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
        ("postgres://u:p@db/app", "postgresql+psycopg://u:p@db/app"),
        ("postgresql+psycopg://u@db/app", "postgresql+psycopg://u@db/app"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ],
)
def test_database_url_normalized(given: str, expected: str) -> None:
    assert normalize_database_url(given) == expected


@pytest.mark.parametrize("algorithm", ["none", "RS256", "ES256", "hs256"])
def test_only_hmac_algorithms(tmp_path: Path, algorithm: str) -> None:
    with pytest.raises(ConfigError, match="JWT_ALGORITHM"):
        create_app(
            {
                "TESTING": True,
                "SECRET_KEY": STRONG,
                "JWT_ALGORITHM": algorithm,
                "INSTANCE_PATH": str(tmp_path),
            }
        )


@pytest.mark.parametrize(
    "name", ["MAX_UPLOAD_MB", "JWT_EXPIRATION_MINUTES", "TORCHSERVE_TIMEOUT", "BCRYPT_ROUNDS"]
)
def test_non_numeric_settings_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        from_env(str(tmp_path), {name: "twenty"})


def test_environment_settings_read(tmp_path: Path) -> None:
    config = from_env(
        str(tmp_path),
        {
            "DATABASE_URL": "postgresql://db/x",
            "MAX_UPLOAD_MB": "5",
            "JWT_EXPIRATION_MINUTES": "7",
            "TORCHSERVE_INFERENCE_URL": "http://ts:8080/",
            "TORCHSERVE_MANAGEMENT_URL": "http://ts:8081",
            "TORCHSERVE_KEY_FILE": "/keys/key_file.json",
            "TORCHSERVE_TIMEOUT": "2.5",
            "ADMIN_TOKEN": "t",
        },
    )
    assert config["SQLALCHEMY_DATABASE_URI"] == "postgresql://db/x"
    assert config["MAX_UPLOAD_MB"] == 5 and config["JWT_EXPIRATION_MINUTES"] == 7
    assert config["TORCHSERVE_INFERENCE_URL"] == "http://ts:8080"
    assert config["TORCHSERVE_KEY_FILE"] == "/keys/key_file.json" and config["TORCHSERVE_TIMEOUT"] == 2.5


@pytest.mark.parametrize(("setting", "expected"), [(None, 1), ("full", 2)])
def test_sqlite_connections_use_wal_and_the_configured_sync(
    tmp_path: Path, setting: str | None, expected: int
) -> None:
    overrides = {} if setting is None else {"SQLITE_SYNCHRONOUS": setting.upper()}
    url = f"sqlite:///{tmp_path / 'sync.db'}"
    with (
        app_on(url, tmp_path / "instance", **overrides) as app,
        app.app_context(),
        db.engine.connect() as conn,
    ):
        pragmas = [
            conn.exec_driver_sql(f"PRAGMA {name}").scalar() for name in ("journal_mode", "synchronous")
        ]
    assert pragmas == ["wal", expected]  # synchronous: 1 is NORMAL (the default), 2 is FULL


def test_unknown_sqlite_sync_mode_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SQLITE_SYNCHRONOUS"):
        _production_app(tmp_path, SECRET_KEY=STRONG, SQLITE_SYNCHRONOUS="OFF")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("FORWARD_CONCURRENCY", 0, "FORWARD_CONCURRENCY must be at least 1"),
        ("FORWARD_USER_CONCURRENCY", 0, "FORWARD_USER_CONCURRENCY must be at least 1"),
        ("FORWARD_USER_MEGAPIXELS", -1, "FORWARD_USER_MEGAPIXELS must be at least 1"),
        ("MAX_REQUEST_MEGAPIXELS", 0, "MAX_REQUEST_MEGAPIXELS must be at least 1"),
        ("DATABASE_CONNECT_TIMEOUT", 0, "DATABASE_CONNECT_TIMEOUT must be at least 1"),
        ("FORWARD_QUEUE_TIMEOUT", 0, "FORWARD_QUEUE_TIMEOUT must be over 0"),
        ("DATABASE_POOL_TIMEOUT", 600, "DATABASE_POOL_TIMEOUT must be over 0 and at most 60"),
        ("RATE_LIMIT_FORWARD_MEGAPIXELS", "lots", "RATE_LIMIT_FORWARD_MEGAPIXELS must look like"),
        ("RATE_LIMIT_TOKEN_USERNAME", "10 per fortnight", "RATE_LIMIT_TOKEN_USERNAME must look like"),
        # One request may cost up to 256 MP and 32 images: a window of less would refuse it for ever.
        (
            "RATE_LIMIT_FORWARD_MEGAPIXELS",
            "100/second;1000/hour",
            "must allow at least MAX_REQUEST_MEGAPIXELS",
        ),
        ("RATE_LIMIT_FORWARD", "10/minute", "must allow at least MAX_FILES_PER_REQUEST"),
    ],
)
def test_bounds_and_limits_refused_when_unusable(
    tmp_path: Path, name: str, value: object, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        app_on(f"sqlite:///{tmp_path / 'api.db'}", tmp_path / "instance", **{name: value}).__enter__()


# --- ADMIN_TOKEN, bcrypt and token lifetime outside tests. ------------------------------------------------


@pytest.mark.parametrize(
    "token", ["changeme", "CHANGE_ME", "admin-token", "short-but-random-Xy7", "a" * 64, "ab" * 32, "  test  "]
)
def test_weak_admin_token_refused_outside_tests(tmp_path: Path, token: str) -> None:
    with pytest.raises(ConfigError, match="ADMIN_TOKEN"):
        _production_app(tmp_path, SECRET_KEY=STRONG, ADMIN_TOKEN=token)


def test_admin_token_must_not_be_the_secret_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ADMIN_TOKEN must not be SECRET_KEY"):
        _production_app(tmp_path, SECRET_KEY=STRONG, ADMIN_TOKEN=STRONG)


def test_unset_admin_token_is_allowed(tmp_path: Path) -> None:
    """Unset, DELETE /history is refused (records/test_routes.py); the app starts."""
    assert _production_app(tmp_path, SECRET_KEY=STRONG, ADMIN_TOKEN="").config["ADMIN_TOKEN"] == ""


def test_generated_secrets_pass(tmp_path: Path) -> None:
    """config.generate_secrets and scripts/init_secrets.sh (what `make run` writes) start the app."""
    assert _production_app(tmp_path, **generate_secrets()).config["ADMIN_TOKEN"]
    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(Path(__file__).resolve().parents[2] / "scripts" / "init_secrets.sh", root / "scripts")
    env = {"PATH": "/usr/bin:/bin"}
    subprocess.run(
        ["bash", str(root / "scripts" / "init_secrets.sh")], check=True, env=env, capture_output=True
    )
    written = read_env_file(root / "instance" / "secrets.env")
    assert set(written) == {"SECRET_KEY", "ADMIN_TOKEN"}
    app = create_app({"INSTANCE_PATH": str(root / "instance")})  # reads instance/secrets.env
    assert app.config["ADMIN_TOKEN"] == written["ADMIN_TOKEN"]


@pytest.mark.parametrize("rounds", [4, 9])
def test_cheap_bcrypt_refused_outside_tests(tmp_path: Path, rounds: int) -> None:
    with pytest.raises(ConfigError, match="BCRYPT_ROUNDS must be at least 10"):
        _production_app(tmp_path, SECRET_KEY=STRONG, BCRYPT_ROUNDS=rounds)
    assert _production_app(tmp_path, SECRET_KEY=STRONG, BCRYPT_ROUNDS=10).config["BCRYPT_ROUNDS"] == 10
    testing = create_app(
        {"TESTING": True, "SECRET_KEY": STRONG, "BCRYPT_ROUNDS": rounds, "INSTANCE_PATH": str(tmp_path)}
    )
    assert testing.config["BCRYPT_ROUNDS"] == rounds  # tests hash fast


@pytest.mark.parametrize("minutes", ["0", "-5", "1441", "525600"])
def test_token_lifetime_capped_at_a_day(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, minutes: str
) -> None:
    monkeypatch.setenv("JWT_EXPIRATION_MINUTES", minutes)
    with pytest.raises(ConfigError, match=r"JWT_EXPIRATION_MINUTES must be between 1 and 1440"):
        _production_app(tmp_path, SECRET_KEY=STRONG)
    with pytest.raises(ConfigError, match="JWT_EXPIRATION_MINUTES"):  # tests too
        create_app({"TESTING": True, "SECRET_KEY": STRONG, "INSTANCE_PATH": str(tmp_path)})


def test_a_days_token_lifetime_is_allowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_EXPIRATION_MINUTES", "1440")
    app = _production_app(tmp_path, SECRET_KEY=STRONG)
    assert app.config["JWT_ACCESS_TOKEN_EXPIRES"].total_seconds() == 24 * 3600
