"""/register, /token and JWT handling: validation, bcrypt, expiry, forgery, deleted users, RBAC."""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta

import jwt as pyjwt
import pytest
import sqlalchemy as sa
from flask_jwt_extended import create_access_token

from control_api.extensions import db
from control_api.tables import User
from tests.control_api.conftest import PASSWORD, SECRET_KEY, AuthActions


def _error(response, status: int, slug: str | None = None) -> dict:
    assert response.status_code == status, response.get_json()
    body = response.get_json()
    assert set(body) >= {"error", "message"} and isinstance(body["message"], str), body
    if slug:
        assert body["error"] == slug, body
    return body


def test_register_returns_the_user(client) -> None:
    response = client.post("/register", json={"username": "alice", "password": PASSWORD})
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"id", "username", "is_admin", "created_at"}
    assert body["username"] == "alice" and body["is_admin"] is False
    assert body["created_at"].endswith("Z")


def test_taken_username_is_409(auth: AuthActions) -> None:
    assert auth.register().status_code == 201
    _error(auth.register(), 409, "username_taken")


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
    body = _error(client.post("/register", json=payload), 422, "validation_error")
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
    _error(client.post("/register", data=data, content_type=content_type), status)


def test_oversized_json_body_is_413(client) -> None:
    _error(client.post("/register", json={"username": "alice", "password": "x" * (2 * 1024 * 1024)}), 413)


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
    wrong = _error(auth.login("alice", "wrong password"), 401)
    unknown = _error(auth.login("nobody", "wrong password"), 401)
    weird = _error(auth.login("no body\x00", "wrong password"), 401)
    assert wrong == unknown == weird


def test_token_rejects_other_grant_types(client, auth: AuthActions) -> None:
    auth.register()
    response = client.post("/token", data={"username": "alice", "password": PASSWORD, "grant_type": "client"})
    _error(response, 422)


def _history_status(client, headers) -> int:
    return int(client.get("/history", headers=headers).status_code)


def test_anonymous_is_401_and_non_admin_is_403(client, auth: AuthActions) -> None:
    _error(client.get("/history"), 401, "missing_token")
    assert client.get("/history").headers["WWW-Authenticate"].startswith("Bearer")
    _error(client.get("/history", headers=auth.headers("bob")), 403, "admin_required")
    assert _history_status(client, auth.admin_headers()) == 200
    for path in ("/stats",):
        _error(client.get(path), 401)
        _error(client.get(path, headers=auth.headers("bob")), 403)
    _error(client.delete("/history", headers=auth.headers("bob")), 403, "admin_required")


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        "Bearer not.a.jwt",
        "Bearer a.b.c.d",
        "Basic YWxpY2U6cGFzc3dvcmQ=",
        "bearer " + "x" * 5000,
        "Bearer ùñí",
    ],
)
def test_malformed_authorization_is_401_in_our_shape(client, header) -> None:
    _error(client.get("/history", headers={"Authorization": header}), 401)
    _error(client.post("/forward", headers={"Authorization": header}), 401)


def _forge(claims: dict, key: str = SECRET_KEY, algorithm: str = "HS256", headers: dict | None = None) -> str:
    return pyjwt.encode(claims, key, algorithm=algorithm, headers=headers)


def _claims(app, username: str = "admin") -> dict:
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.username == username))
        assert user is not None
        now = int(time.time())
        return {
            "sub": str(user.id),
            "username": username,
            "type": "access",
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            "jti": "x",
            "fresh": False,
        }


def test_forged_and_confused_tokens_are_401(app, client, auth: AuthActions) -> None:
    assert _history_status(client, auth.admin_headers()) == 200
    claims = _claims(app)

    def status(token: str) -> int:
        response = client.get("/history", headers={"Authorization": f"Bearer {token}"})
        if response.status_code == 401:
            _error(response, 401)
        return int(response.status_code)

    assert status(_forge(claims)) == 200  # the control: a correctly signed token works
    assert status(_forge(claims, key="another-secret-that-is-long-enough-to-sign")) == 401
    assert status(_forge(claims, algorithm="HS512")) == 401  # only HS256 is accepted
    # alg=none: header {"alg": "none"}, no signature.
    segments = [
        base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()
        for part in ({"alg": "none", "typ": "JWT"}, claims)
    ]
    assert status(".".join(segments) + ".") == 401
    # Tampered payload with the original signature.
    good = _forge(claims).split(".")
    evil = base64.urlsafe_b64encode(json.dumps({**claims, "sub": "999"}).encode()).rstrip(b"=").decode()
    assert status(".".join([good[0], evil, good[2]])) == 401
    assert status(_forge({**claims, "username": "someone-else"})) == 401
    assert status(_forge({**claims, "sub": 1})) == 401  # identity must be a string


def test_expired_token_is_401(app, client, auth: AuthActions) -> None:
    auth.token("admin", admin=True)
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.username == "admin"))
        assert user is not None
        token = create_access_token(
            identity=str(user.id),
            additional_claims={"username": "admin"},
            expires_delta=timedelta(seconds=-1),
        )
    _error(client.get("/history", headers={"Authorization": f"Bearer {token}"}), 401, "token_expired")


def test_expiry_follows_config(database_url, fake_ts, tmp_path) -> None:
    from tests.control_api.conftest import app_on, torchserve_settings

    with app_on(
        database_url, tmp_path / "i", JWT_EXPIRATION_MINUTES=1, **torchserve_settings(fake_ts)
    ) as app:
        actions = AuthActions(app.test_client())
        token = actions.token("admin", admin=True)
        claims = pyjwt.decode(token, SECRET_KEY, algorithms=["HS256"])
        assert claims["exp"] - claims["iat"] == 60


def test_deleted_users_token_is_rejected(app, client, auth: AuthActions) -> None:
    headers = auth.admin_headers()
    assert _history_status(client, headers) == 200
    with app.app_context():
        db.session.execute(sa.delete(User).where(User.username == "admin"))
        db.session.commit()
    _error(client.get("/history", headers=headers), 401, "invalid_token")
    # A new user with the same name gets a new id: the old token still does not work.
    auth.token("admin", admin=True)
    _error(client.get("/history", headers=headers), 401, "invalid_token")


def test_demoted_admin_loses_access_at_once(app, client, auth: AuthActions) -> None:
    headers = auth.admin_headers()
    with app.app_context():
        db.session.execute(sa.update(User).values(is_admin=False))
        db.session.commit()
    _error(client.get("/history", headers=headers), 403)
