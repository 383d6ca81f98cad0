"""Rate limits: /token and /register per client IP, /forward per user (in images); 429 in our shape with
Retry-After; memory storage, Redis storage (shared between apps, i.e. gunicorn workers), and Redis
going away."""

from __future__ import annotations

import io
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from PIL import Image

from control_api.extensions import db
from control_api.tables import History
from tests.control_api.conftest import PASSWORD, AuthActions, app_on, torchserve_settings

REDIS_URL = "redis://127.0.0.1:6379/0"


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (5, 6, 7)).save(buf, format="PNG")
    return buf.getvalue()


def limited_app(tmp_path: Path, fake_ts, name: str = "i", **overrides: Any):
    settings = {
        **torchserve_settings(fake_ts),
        "RATE_LIMIT_ENABLED": True,
        "RATE_LIMIT_KEY_PREFIX": f"test-{secrets.token_hex(4)}",
        **overrides,
    }
    return app_on(f"sqlite:///{tmp_path / 'api.db'}", tmp_path / name, **settings)


def login(client, ip: str = "10.0.0.1", password: str = "wrong password") -> Any:
    return client.post(
        "/token",
        data={"username": "alice", "password": password},
        environ_overrides={"REMOTE_ADDR": ip},
    )


def assert_429(response) -> int:
    assert response.status_code == 429, response.get_json()
    body = response.get_json()
    assert body["error"] == "rate_limited" and "limit" in body["message"]
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert response.headers["X-RateLimit-Remaining"] == "0"
    return retry_after


@pytest.fixture
def redis_available() -> None:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            pass
    except OSError:
        pytest.skip("no Redis on 127.0.0.1:6379")


@pytest.fixture
def redis_prefix(redis_available: None) -> Iterator[str]:
    """A key prefix of our own; its keys are deleted afterwards."""
    import redis

    prefix = f"test-{secrets.token_hex(6)}"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"*{prefix}*"):
        client.delete(key)
    client.close()


def test_token_limited_per_ip_with_memory_storage(tmp_path: Path, fake_ts) -> None:
    with limited_app(tmp_path, fake_ts, RATE_LIMIT_TOKEN="3/minute") as app:
        client = app.test_client()
        assert [login(client).status_code for _ in range(3)] == [401, 401, 401]  # wrong passwords count too
        assert_429(login(client))
        assert_429(login(client, password=PASSWORD))  # even the right password, for now
        assert login(client, ip="10.0.0.2").status_code == 401  # another address has its own budget
        ok = login(client, ip="10.0.0.3")
        assert ok.headers["X-RateLimit-Limit"] == "3" and ok.headers["X-RateLimit-Remaining"] == "2"
        assert "Retry-After" not in ok.headers


def test_register_limited_per_ip(tmp_path: Path, fake_ts) -> None:
    with limited_app(tmp_path, fake_ts, RATE_LIMIT_REGISTER="2/minute") as app:
        client = app.test_client()
        statuses = [
            client.post("/register", json={"username": f"user{i}", "password": PASSWORD}).status_code
            for i in range(3)
        ]
        assert statuses[:2] == [201, 201]
        assert_429(client.post("/register", json={"username": "user9", "password": PASSWORD}))


def test_forward_limited_per_user_and_the_refusal_is_recorded(tmp_path: Path, fake_ts) -> None:
    with limited_app(tmp_path, fake_ts, RATE_LIMIT_FORWARD="2/minute", MAX_FILES_PER_REQUEST=2) as app:
        client = app.test_client()
        auth = AuthActions(client)
        alice, bob = auth.headers("alice"), auth.headers("bob")

        def forward(headers: dict[str, str]) -> Any:
            data = {"file": (io.BytesIO(png()), "a.png")}
            return client.post("/forward", data=data, headers=headers, content_type="multipart/form-data")

        assert [forward(alice).status_code for _ in range(2)] == [200, 200]
        assert_429(forward(alice))
        assert forward(bob).status_code == 200  # same address, another user
        assert len(fake_ts.requests) == 3  # the refused request never reached TorchServe
        with app.app_context():
            refused = db.session.scalars(sa.select(History).where(History.status_code == 429)).all()
            assert [(r.username, r.file_count) for r in refused] == [("alice", 1)]


def test_limits_off_and_configurable(tmp_path: Path, fake_ts) -> None:
    with limited_app(tmp_path, fake_ts, RATE_LIMIT_ENABLED=False, RATE_LIMIT_TOKEN="1/minute") as app:
        client = app.test_client()
        assert {login(client).status_code for _ in range(5)} == {401}
    with limited_app(tmp_path, fake_ts, name="j", RATE_LIMIT_TOKEN="", RATE_LIMIT_TOKEN_USERNAME="") as app:
        client = app.test_client()  # these limits off
        assert {login(client).status_code for _ in range(12)} == {401}


def test_bad_limit_setting_is_refused(tmp_path: Path, fake_ts) -> None:
    from control_api.config import ConfigError

    with (
        pytest.raises(ConfigError, match="RATE_LIMIT_TOKEN"),
        limited_app(tmp_path, fake_ts, RATE_LIMIT_TOKEN="lots"),
    ):
        pass


def test_redis_storage_is_shared_between_workers(tmp_path: Path, fake_ts, redis_prefix: str) -> None:
    """Two apps on one Redis (as two gunicorn workers would be) share one budget."""
    settings = {"REDIS_URL": REDIS_URL, "RATE_LIMIT_KEY_PREFIX": redis_prefix, "RATE_LIMIT_TOKEN": "3/minute"}
    with (
        limited_app(tmp_path, fake_ts, name="w1", **settings) as one,
        limited_app(tmp_path, fake_ts, name="w2", **settings) as two,
    ):
        first, second = one.test_client(), two.test_client()
        assert [login(first).status_code, login(second).status_code, login(first).status_code] == [401] * 3
        assert_429(login(second))
        assert_429(login(first))


def test_redis_down_falls_back_to_memory(tmp_path: Path, fake_ts) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{s.getsockname()[1]}/0"
    with limited_app(tmp_path, fake_ts, REDIS_URL=dead, RATE_LIMIT_TOKEN="2/minute") as app:
        client = app.test_client()
        assert [login(client).status_code for _ in range(2)] == [401, 401]  # answered, not 500
        assert_429(login(client))  # and still limited, in memory


def test_forwarded_for_is_trusted_only_behind_configured_proxies(tmp_path: Path, fake_ts) -> None:
    def attempt(client, forwarded_for: str) -> int:
        return int(
            client.post(
                "/token",
                data={"username": "alice", "password": "wrong password"},
                headers={"X-Forwarded-For": forwarded_for},
                environ_overrides={"REMOTE_ADDR": "10.9.9.9"},
            ).status_code
        )

    # No proxy configured: a client cannot escape its limit by inventing X-Forwarded-For addresses.
    with limited_app(tmp_path, fake_ts, RATE_LIMIT_TOKEN="2/minute") as app:
        client = app.test_client()
        assert [attempt(client, f"192.0.2.{i}") for i in range(3)] == [401, 401, 429]
    # Behind one proxy: the address it reports is the client's.
    with limited_app(tmp_path, fake_ts, name="j", RATE_LIMIT_TOKEN="2/minute", TRUSTED_PROXIES=1) as app:
        client = app.test_client()
        assert [attempt(client, f"192.0.2.{i}") for i in range(3)] == [401, 401, 401]
        assert [attempt(client, "192.0.2.77") for _ in range(3)] == [401, 401, 429]


def test_redis_going_away_mid_run_falls_back_and_comes_back(
    tmp_path: Path, fake_ts, redis_prefix: str
) -> None:
    """Redis behind a proxy that is cut while the app runs (connections dropped, new ones never
    answered): requests are still answered and limited, from memory, then counted in Redis again."""
    import redis

    from tests.control_api.tcp_proxy import tcp_proxy

    with tcp_proxy("127.0.0.1", 6379) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/0"
        settings = {"REDIS_URL": url, "RATE_LIMIT_KEY_PREFIX": redis_prefix, "RATE_LIMIT_TOKEN": "3/hour"}
        with limited_app(tmp_path, fake_ts, RATE_LIMIT_TOKEN_USERNAME="", **settings) as app:
            client = app.test_client()
            before = [login(client, ip="10.1.0.1").status_code for _ in range(2)]
            proxy.cut()
            during = [login(client, ip="10.1.0.2").status_code for _ in range(4)]
            proxy.restore()
            time.sleep(3)  # Flask-Limiter tries Redis again 1, 2, 4... seconds after it went away
            after = [login(client, ip="10.1.0.1").status_code for _ in range(2)]

    in_redis = redis.Redis.from_url(REDIS_URL)
    counted = [key for key in in_redis.scan_iter(match=f"*{redis_prefix}*") if b"10.1.0.1" in key]
    in_redis.close()
    assert before == [401, 401]
    assert during == [401, 401, 401, 429]  # limited all the same, in memory
    assert after == [401, 429]  # Redis again: 10.1.0.1's two earlier attempts are still counted there
    assert counted
