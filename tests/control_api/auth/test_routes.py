"""/register and /token: validation, bcrypt, uniform failures, usernames unique in any case."""

from __future__ import annotations

import logging

import jwt as pyjwt
import pytest
from sqlalchemy.exc import IntegrityError

from control_api.auth import users
from control_api.extensions import db
from control_api.tables import User
from tests.control_api.conftest import (
    PASSWORD,
    SECRET_KEY,
    AuthActions,
    assert_error,
)


def test_register_returns_the_user(client) -> None:
    response = client.post("/register", json={"username": "alice", "password": PASSWORD})
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"id", "username", "is_admin", "created_at"}
    assert body["username"] == "alice" and body["is_admin"] is False
    assert body["created_at"].endswith("Z")


def test_taken_username_is_409(auth: AuthActions) -> None:
    assert auth.register().status_code == 201
    assert_error(auth.register(), 409, "username_taken")


@pytest.mark.parametrize(
    "payload",
    [
        {"username": "al", "password": PASSWORD},  # too short
        {"username": "a" * 65, "password": PASSWORD},
        {"username": "ünïcødé", "password": PASSWORD},
        {"username": "bad name", "password": PASSWORD},
        {"username": "alice\n", "password": PASSWORD},  # a trailing newline must not slip past the regex
        {"username": "nul\x00byte", "password": PASSWORD},
        {"username": "alice", "password": "short"},
        {"username": "alice", "password": "x" * 129},
        {"username": "alice"},
        {"password": PASSWORD},
        {"username": None, "password": PASSWORD},
        {"username": 123, "password": PASSWORD},
        {"username": "alice", "password": PASSWORD, "is_admin": True},  # no self-promotion
        {"username": "x" * 100_000, "password": PASSWORD},
    ],
)
def test_invalid_registration_is_422(client, payload) -> None:
    body = assert_error(client.post("/register", json=payload), 422, "validation_error")
    assert "details" in body


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        ("{not json", "application/json", 400),
        ("[1, 2]", "application/json", 422),
        ('"a string"', "application/json", 422),
        ("username=alice&password=correct+horse", "application/x-www-form-urlencoded", 422),
        ("", "application/json", 422),
        (b"\xff\xfe\x00garbage", "application/json", 400),
    ],
)
def test_malformed_bodies_are_4xx(client, data, content_type, status) -> None:
    assert_error(client.post("/register", data=data, content_type=content_type), status)


def test_oversized_json_body_is_413(client) -> None:
    assert_error(
        client.post("/register", json={"username": "alice", "password": "x" * (2 * 1024 * 1024)}), 413
    )


def test_unicode_password_works(auth: AuthActions) -> None:
    password = "пароль-密码-🔑🔑"
    assert auth.register("uni", password).status_code == 201
    assert auth.login("uni", password).status_code == 200
    assert auth.login("uni", password[:-1]).status_code == 401


def test_long_passwords_are_not_truncated(auth: AuthActions) -> None:
    """bcrypt reads 72 bytes; the SHA-256 pre-hash makes every byte count (and bcrypt 5 never raises)."""
    long = "p" * 100  # 128 characters is the limit; 4-byte characters make it 512 bytes
    assert auth.register("longpw", long).status_code == 201
    assert auth.login("longpw", long).status_code == 200
    assert auth.login("longpw", "p" * 99 + "q").status_code == 401  # same first 72 bytes
    emoji = "🔑" * 128
    assert auth.register("emoji", emoji).status_code == 201
    assert auth.login("emoji", emoji).status_code == 200
    assert auth.login("emoji", "🔑" * 127 + "x").status_code == 401


def test_token_via_form_and_json(auth: AuthActions, client) -> None:
    auth.register()
    for response in (
        client.post("/token", data={"username": "alice", "password": PASSWORD, "grant_type": "password"}),
        client.post("/token", json={"username": "alice", "password": PASSWORD}),
    ):
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert body["token_type"] == "bearer" and body["expires_in"] == 30 * 60
        assert response.headers["Cache-Control"] == "no-store"
        claims = pyjwt.decode(body["access_token"], SECRET_KEY, algorithms=["HS256"])
        assert isinstance(claims["sub"], str) and claims["username"] == "alice"


def test_unknown_user_and_wrong_password_look_the_same(auth: AuthActions) -> None:
    auth.register()
    wrong = assert_error(auth.login("alice", "wrong password"), 401)
    unknown = assert_error(auth.login("nobody", "wrong password"), 401)
    weird = assert_error(auth.login("no body\x00", "wrong password"), 401)
    assert wrong == unknown == weird


def test_token_rejects_other_grant_types(client, auth: AuthActions) -> None:
    auth.register()
    response = client.post("/token", data={"username": "alice", "password": PASSWORD, "grant_type": "client"})
    assert_error(response, 422)


# --- Usernames are unique in any case. ----------------------------------------------------------------------


def test_usernames_are_unique_in_any_case(client, auth: AuthActions) -> None:
    assert auth.register("Alice").status_code == 201
    for other in ("alice", "ALICE", "aLiCe"):
        assert_error(auth.register(other), 409, "username_taken")


def test_login_ignores_case_and_keeps_the_stored_spelling(client, auth: AuthActions) -> None:
    auth.register("Alice")
    for given in ("Alice", "alice", "ALICE"):
        response = auth.login(given)
        assert response.status_code == 200, response.get_json()
        token = response.get_json()["access_token"]
        assert pyjwt.decode(token, SECRET_KEY, algorithms=["HS256"])["username"] == "Alice"
        me = client.get("/me", headers={"Authorization": f"Bearer {token}"}).get_json()
        assert me["username"] == "Alice"
    assert_error(auth.login("alice", "wrong password"), 401, "invalid_credentials")


# --- Database errors never carry the statement's values. --------------------------------------------------


def test_a_lost_registration_race_logs_no_password_hash(
    app, auth: AuthActions, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Two registrations of one name in any case at once: the loser's INSERT fails on the unique index
    (IntegrityError), a 409. Neither the engine's log nor the error's text holds the bcrypt hash."""
    auth.register("alice")
    monkeypatch.setattr(users, "find_user", lambda name: None)  # as if the other insert came in between
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")  # statements and their values, if shown
    assert_error(auth.register("ALICE"), 409, "username_taken")
    assert "INSERT INTO users" in caplog.text  # the engine logged the statement ...
    assert "$2b$" not in caplog.text  # ... and not its values

    with app.app_context():
        user = User(username="Alice")
        user.set_password(PASSWORD)
        db.session.add(user)
        with pytest.raises(IntegrityError) as failed:
            db.session.flush()
        db.session.rollback()
        logging.getLogger("control_api").error("insert failed", exc_info=failed.value)
    assert "hide_parameters=True" in str(failed.value)
    assert "$2b$" not in str(failed.value) and "$2b$" not in caplog.text
