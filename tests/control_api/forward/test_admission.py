"""What /forward admits before TorchServe sees an image: images and megapixels per user, megapixels per
request (from the headers, before any decode), calls without a token per address, requests in flight
per user, and the per-process bulkhead. Against the fake TorchServe (its delay holds requests open)."""

from __future__ import annotations

import io
import secrets
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.control_api.conftest import AuthActions, app_on, assert_error, torchserve_settings
from tests.control_api.forward.test_routes import forward, history, png

MEGAPIXEL_PNG = png(1000, 1000)


@pytest.fixture
def make_app(tmp_path: Path, fake_ts) -> Iterator[Any]:
    """An app factory: SQLite, the fake TorchServe, rate limits on, and the given settings."""
    opened: list[Any] = []

    def make(**overrides: Any) -> Any:
        settings = {
            **torchserve_settings(fake_ts),
            "RATE_LIMIT_ENABLED": True,
            "RATE_LIMIT_KEY_PREFIX": f"test-{secrets.token_hex(4)}",
            **overrides,
        }
        context = app_on(f"sqlite:///{tmp_path / 'api.db'}", tmp_path / "instance", **settings)
        opened.append(context)
        return context.__enter__()

    yield make
    for context in reversed(opened):
        context.__exit__(None, None, None)


def test_forward_limit_counts_images(make_app) -> None:
    app = make_app(RATE_LIMIT_FORWARD="5/minute", MAX_FILES_PER_REQUEST=4)
    client = app.test_client()
    headers = AuthActions(client).headers()

    first = forward(client, headers, png(), png(), png(), png())
    refused = forward(client, headers, png(), png())

    assert first.status_code == 200, first.get_json()
    assert_error(refused, 429, "rate_limited")
    assert [(r.status_code, r.file_count) for r in history(app)] == [(200, 4), (429, 2)]


def test_megapixel_budget_per_user(make_app) -> None:
    app = make_app(RATE_LIMIT_FORWARD_MEGAPIXELS="3/minute", MAX_REQUEST_MEGAPIXELS=2)
    client = app.test_client()
    auth = AuthActions(client)
    alice, bob = auth.headers("alice"), auth.headers("bob")

    answers = [forward(client, alice, MEGAPIXEL_PNG, MEGAPIXEL_PNG).status_code for _ in range(2)]
    bob_answer = forward(client, bob, MEGAPIXEL_PNG)

    assert answers == [200, 429]
    assert bob_answer.status_code == 200


def test_megapixels_per_request_counted_from_headers(make_app, fake_ts) -> None:
    app = make_app(MAX_REQUEST_MEGAPIXELS=1)
    client = app.test_client()
    headers = AuthActions(client).headers()

    too_many = forward(client, headers, png(1000, 600), png(1000, 600), query="?model=made-up")
    one = forward(client, headers, png(1000, 600))

    body = assert_error(too_many, 422, "too_many_pixels")
    assert "1.2 megapixels" in body["message"]
    assert one.status_code == 200
    assert len(fake_ts.requests) == 1  # the refused images never went upstream
    rows = history(app)
    assert [r.status_code for r in rows] == [422, 200]
    assert rows[0].model_name == "unknown"  # a name TorchServe never confirmed


def test_decompression_bomb_refused_from_its_header(make_app, fake_ts) -> None:
    app = make_app()
    client = app.test_client()
    # A PNG whose header declares 200 000 x 200 000 pixels: Pillow refuses to open it at all.
    buf = io.BytesIO()
    Image.new("1", (1, 1)).save(buf, format="PNG")
    header = bytearray(buf.getvalue())
    header[16:24] = (200_000).to_bytes(4, "big") * 2
    header[29:33] = zlib.crc32(header[12:29]).to_bytes(4, "big")  # IHDR's checksum, made right again

    response = forward(client, AuthActions(client).headers(), bytes(header))

    assert_error(response, 422, "image_too_large")
    assert fake_ts.requests == []


def test_anonymous_forward_limited_per_address_without_history(make_app) -> None:
    app = make_app(RATE_LIMIT_FORWARD_ANONYMOUS="2/minute")
    client = app.test_client()
    headers = AuthActions(client).headers()
    here = {"REMOTE_ADDR": "198.51.100.7"}

    def anonymous() -> int:
        return int(client.post("/forward", data={}, environ_overrides=here).status_code)

    statuses = [anonymous() for _ in range(3)]
    signed_in = forward(client, headers, png())

    assert statuses == [401, 401, 429]
    assert signed_in.status_code == 200  # the same address with a token is not that budget
    assert [r.status_code for r in history(app)] == [200]


def _in_background(client, headers: dict[str, str]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(forward(client, headers, png())))
    thread.start()
    return thread, out


def _wait_for_upstream(fake_ts, count: int) -> None:
    deadline = time.monotonic() + 30
    while len(fake_ts.requests) < count:
        assert time.monotonic() < deadline, "the request never reached TorchServe"
        time.sleep(0.02)


def test_requests_in_flight_per_user(make_app, fake_ts) -> None:
    app = make_app(FORWARD_USER_CONCURRENCY=1)
    auth = AuthActions(app.test_client())
    alice, bob = auth.headers("alice"), auth.headers("bob")
    fake_ts.delay_s = 3.0
    held, held_answer = _in_background(app.test_client(), alice)
    _wait_for_upstream(fake_ts, 1)

    second = forward(app.test_client(), alice, png())
    fake_ts.delay_s = 0.0
    bobs = forward(app.test_client(), bob, png())
    held.join(60)

    assert_error(second, 429, "too_many_concurrent")
    assert second.headers["Retry-After"] == "1"
    assert bobs.status_code == 200
    assert held_answer[0].status_code == 200
    assert sorted(r.status_code for r in history(app)) == [200, 200, 429]


def test_bulkhead_answers_503_when_every_slot_is_taken(make_app, fake_ts) -> None:
    app = make_app(FORWARD_CONCURRENCY=1, FORWARD_QUEUE_TIMEOUT=0.2, RETRY_AFTER_SECONDS=7)
    auth = AuthActions(app.test_client())
    alice, bob = auth.headers("alice"), auth.headers("bob")
    fake_ts.delay_s = 3.0
    held, held_answer = _in_background(app.test_client(), alice)
    _wait_for_upstream(fake_ts, 1)

    busy = forward(app.test_client(), bob, png())
    health = app.test_client().get("/me", headers=bob)
    held.join(60)

    assert_error(busy, 503, "forward_busy")
    assert busy.headers["Retry-After"] == "7"
    assert health.status_code == 200
    assert held_answer[0].status_code == 200
    assert len(fake_ts.requests) == 1  # the refused request never went upstream
    assert sorted(r.status_code for r in history(app)) == [200, 503]


def test_megapixels_in_flight_per_user(make_app, fake_ts) -> None:
    app = make_app(FORWARD_USER_MEGAPIXELS=1)
    alice = AuthActions(app.test_client()).headers("alice")
    alone = forward(app.test_client(), alice, MEGAPIXEL_PNG, MEGAPIXEL_PNG)  # over it, but alone: runs
    fake_ts.delay_s = 3.0
    held, held_answer = _in_background(app.test_client(), alice)
    _wait_for_upstream(fake_ts, 3)

    second = forward(app.test_client(), alice, MEGAPIXEL_PNG)
    held.join(60)

    assert alone.status_code == 200
    body = assert_error(second, 429, "too_many_concurrent")
    assert "1 megapixels" in body["message"]
    assert held_answer[0].status_code == 200
