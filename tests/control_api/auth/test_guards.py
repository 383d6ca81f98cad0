"""The guards and JWTs: 401 and 403 in our shape, expiry, forgery, deleted and demoted users."""

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
from tests.control_api.conftest import (
    SECRET_KEY,
    AuthActions,
    app_on,
    assert_error,
    torchserve_settings,
)


def _history_status(client, headers) -> int:
    return int(client.get("/history", headers=headers).status_code)


def test_anonymous_is_401_and_non_admin_is_403(client, auth: AuthActions) -> None:
    assert_error(client.get("/history"), 401, "missing_token")
    assert client.get("/history").headers["WWW-Authenticate"].startswith("Bearer")
    assert_error(client.get("/history", headers=auth.headers("bob")), 403, "admin_required")
    assert _history_status(client, auth.admin_headers()) == 200
    for path in ("/stats",):
        assert_error(client.get(path), 401)
        assert_error(client.get(path, headers=auth.headers("bob")), 403)
    assert_error(client.delete("/history", headers=auth.headers("bob")), 403, "admin_required")


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
    assert_error(client.get("/history", headers={"Authorization": header}), 401)
    assert_error(client.post("/forward", headers={"Authorization": header}), 401)


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
            "ver": user.token_version,
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
            assert_error(response, 401)
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
    assert status(_forge({**claims, "ver": claims["ver"] - 1})) == 401  # issued under an older version
    assert status(_forge({name: value for name, value in claims.items() if name != "ver"})) == 401


def test_expired_token_is_401(app, client, auth: AuthActions) -> None:
    auth.token("admin", admin=True)
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.username == "admin"))
        assert user is not None
        token = create_access_token(
            identity=str(user.id),
            additional_claims={"username": "admin", "ver": user.token_version},
            expires_delta=timedelta(seconds=-1),
        )
    assert_error(client.get("/history", headers={"Authorization": f"Bearer {token}"}), 401, "token_expired")


def test_expiry_follows_config(database_url, fake_ts, tmp_path) -> None:
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
    assert_error(client.get("/history", headers=headers), 401, "invalid_token")
    # A new user with the same name gets a new id: the old token still does not work.
    auth.token("admin", admin=True)
    assert_error(client.get("/history", headers=headers), 401, "invalid_token")


def test_demoted_admin_loses_access_at_once(app, client, auth: AuthActions) -> None:
    headers = auth.admin_headers()
    with app.app_context():
        db.session.execute(sa.update(User).values(is_admin=False))
        db.session.commit()
    assert_error(client.get("/history", headers=headers), 403)


def test_a_disabled_accounts_token_is_revoked_even_unbumped(app, client, auth: AuthActions) -> None:
    """Disabling through the API also bumps token_version; the flag alone is enough to refuse."""
    headers = auth.headers("alice")
    with app.app_context():
        db.session.execute(sa.update(User).where(User.username == "alice").values(disabled=True))
        db.session.commit()
    assert_error(client.get("/me", headers=headers), 401, "token_revoked")
    assert_error(client.post("/forward", headers=headers), 401, "token_revoked")


def test_revoked_tokens_are_documented(client) -> None:
    spec = client.get("/openapi.json").get_json()
    for path, method in (("/me", "get"), ("/users", "get"), ("/history", "get")):
        assert "token_revoked" in spec["paths"][path][method]["responses"]["401"]["description"]
