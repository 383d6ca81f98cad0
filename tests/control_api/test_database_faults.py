"""The database unreachable: the real PostgreSQL behind a TCP proxy that is cut (connections dropped, new
ones accepted and never answered: the slow way a database goes away). Every endpoint answers 503 in
our shape instead of hanging, /health names the database, and service comes back with it. A
classification whose history row cannot be written is answered 503, not delivered unrecorded."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from tests.control_api.conftest import (
    PASSWORD,
    TABLES,
    AuthActions,
    app_on,
    assert_error,
    torchserve_settings,
)
from tests.control_api.forward.test_routes import forward, history, png
from tests.control_api.tcp_proxy import TcpProxy, tcp_proxy

# The configured timeouts are 2 s; an answer within this bound is an answer, not a hang (without a
# connect timeout, a connection to the cut proxy waits for ever).
NO_HANG_S = 30.0


@pytest.fixture
def proxied(pg_database: str) -> Iterator[tuple[str, TcpProxy]]:
    """The session's PostgreSQL database, emptied, reached through a proxy."""
    engine = sa.create_engine(pg_database)
    with engine.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY"))
    engine.dispose()
    url = make_url(pg_database)
    with tcp_proxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        yield url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False), proxy


@pytest.fixture
def app(proxied: tuple[str, TcpProxy], fake_ts, tmp_path: Path) -> Iterator[Any]:
    settings = {**torchserve_settings(fake_ts), "DATABASE_CONNECT_TIMEOUT": 2, "DATABASE_POOL_TIMEOUT": 2}
    with app_on(proxied[0], tmp_path / "instance", **settings) as app:
        yield app


def timed(call: Any) -> tuple[Any, float]:
    started = time.monotonic()
    answer = call()
    return answer, time.monotonic() - started


@pytest.mark.postgres
def test_database_down_answers_503_then_recovers(app, proxied: tuple[str, TcpProxy]) -> None:
    _, proxy = proxied
    client = app.test_client()
    headers = AuthActions(client).headers()
    proxy.cut()

    answers = {
        "forward": timed(lambda: forward(client, headers, png())),
        "me": timed(lambda: client.get("/me", headers=headers)),
        "token": timed(lambda: client.post("/token", data={"username": "alice", "password": PASSWORD})),
        "health": timed(lambda: client.get("/health")),
    }
    proxy.restore()
    recovered = forward(client, headers, png())

    for name, (answer, seconds) in answers.items():
        assert seconds < NO_HANG_S, name
        assert answer.status_code == 503, (name, answer.get_json())
        assert answer.get_json()["error"] in ("database_unavailable", "service_unavailable"), name
    assert answers["forward"][0].headers["Retry-After"]
    assert answers["health"][0].get_json()["database"] == "unavailable"
    assert answers["health"][0].get_json()["torchserve"] == "ok"
    assert recovered.status_code == 200, recovered.get_json()
    assert [row.status_code for row in history(app)] == [200]


@pytest.mark.postgres
def test_classification_whose_row_cannot_be_written_is_503(app, proxied, fake_ts) -> None:
    _, proxy = proxied
    client = app.test_client()
    headers = AuthActions(client).headers()
    fake_ts.delay_s = 2.0
    answers: list[Any] = []
    thread = threading.Thread(target=lambda: answers.append(forward(app.test_client(), headers, png())))
    thread.start()
    deadline = time.monotonic() + NO_HANG_S
    while not fake_ts.requests:
        assert time.monotonic() < deadline
        time.sleep(0.02)

    proxy.cut()  # while TorchServe classifies the image
    thread.join(NO_HANG_S * 2)
    proxy.restore()

    [answer] = answers
    assert_error(answer, 503, "database_unavailable")
    assert answer.headers["Retry-After"]
    assert "predictions" not in answer.get_json()  # no result goes out unrecorded
    assert [(r.status_code, r.error_message) for r in history(app)] == []
