"""Odd requests get a clear 4xx in the common shape, never a 500."""

from __future__ import annotations

import io

import pytest

from tests.control_api.conftest import AuthActions, assert_error


def test_unknown_route_and_method(client) -> None:
    assert assert_error(client.get("/nope"), 404)["error"] == "not_found"
    assert assert_error(client.get("/forward"), 405)["error"] == "method_not_allowed"
    assert assert_error(client.put("/register", json={}), 405)["error"] == "method_not_allowed"


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
    assert_error(response, response.status_code)


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
    assert assert_error(response, 422)["error"] == "validation_error"


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
    assert_error(client.post("/token", json=payload), 422)
