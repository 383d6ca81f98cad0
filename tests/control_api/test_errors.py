"""Odd requests get a clear 4xx in the common shape, never a 500; /health names what is down."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from control_api.extensions import db
from tests.control_api.conftest import AuthActions, make_app, torchserve_settings


def _shape(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:300])
    body = response.get_json()
    assert isinstance(body, dict) and set(body) >= {"error", "message"}, body
    return body


def test_unknown_route_and_method(client) -> None:
    assert _shape(client.get("/nope"), 404)["error"] == "not_found"
    assert _shape(client.get("/forward"), 405)["error"] == "method_not_allowed"
    assert _shape(client.put("/register", json={}), 405)["error"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", b"--x\r\n"),  # no boundary parameter
        ("multipart/form-data; boundary=x", b"garbage without any boundary"),
        ("multipart/form-data; boundary=x", b'--x\r\nContent-Disposition: form-data; name="file"\r\n\r\nabc'),
        ("application/x-www-form-urlencoded", b"file=abc&top_k=3"),
        ("text/plain", b"hello"),
    ],
)
def test_malformed_uploads_are_4xx(client, auth: AuthActions, content_type: str, body: bytes) -> None:
    response = client.post("/forward", data=body, content_type=content_type, headers=auth.headers())
    assert 400 <= response.status_code < 500, response.get_json()
    _shape(response, response.status_code)


def test_file_field_sent_as_text_is_4xx(client, auth: AuthActions) -> None:
    response = client.post(
        "/forward",
        data={"file": "not a file part"},
        headers=auth.headers(),
        content_type="multipart/form-data",
    )
    assert response.status_code in (400, 422)


def test_many_odd_fields(client, auth: AuthActions) -> None:
    data = {"file": (io.BytesIO(b"x"), "a.png"), **{f"f{i}": "v" for i in range(50)}}
    response = client.post("/forward", data=data, headers=auth.headers(), content_type="multipart/form-data")
    assert _shape(response, 422)["error"] == "validation_error"


@pytest.mark.parametrize(
    "payload",
    [
        {"username": "a" * 300, "password": "x"},
        {"username": "alice", "password": "x" * 2000},
        {"username": ["alice"], "password": "x"},
        {"username": {"$ne": ""}, "password": "x"},
    ],
)
def test_odd_token_requests_are_422(client, payload) -> None:
    _shape(client.post("/token", json=payload), 422)


def test_health_ok_and_database_down(client, fake_ts, tmp_path: Path) -> None:
    assert client.get("/health").get_json() == {"status": "ok", "database": "ok", "torchserve": "ok"}
    broken = f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'x.db'}"  # cannot be opened
    down = make_app(broken, tmp_path / "i2", **torchserve_settings(fake_ts))
    try:
        body = _shape(down.test_client().get("/health"), 503)
        assert body["database"] == "unavailable" and body["torchserve"] == "ok"
        assert body["status"] == "unavailable" and body["message"].startswith("database")
        # A user-facing call that needs the database says so too, as 503 rather than 500.
        response = down.test_client().post("/register", json={"username": "alice", "password": "x" * 10})
        assert _shape(response, 503)["error"] == "database_unavailable"
    finally:
        with down.app_context():
            db.engine.dispose()
