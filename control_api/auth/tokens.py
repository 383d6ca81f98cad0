"""JWTs: issued by ``issue_token``, read back by flask-jwt-extended through the loaders here.

Tokens are HS256 (or HS384/HS512) JWTs signed with SECRET_KEY; ``sub`` is the user id as a string
(PyJWT 2.10+ requires a string) and ``username`` is checked as well, so a token cannot outlive its
user, even if a deleted user's id were ever reused. ``ver`` is the user's ``token_version`` when the token
was issued: a password change, a demotion or disabling the account bumps it (``auth.accounts``), and every
token carrying an older one is revoked (401 ``token_revoked``), as is every token of a disabled account.
Every JWT failure is a 401 in our error shape.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import sqlalchemy as sa
from flask import current_app, g
from flask_jwt_extended import create_access_token

from ..errors import APIError, error_body
from ..extensions import db, jwt
from ..tables import User
from .identity import CurrentUser

BEARER = {"WWW-Authenticate": 'Bearer realm="control-api"'}
# A token in an answer is never cached (RFC 6749, 5.1).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def issue_token(user: User) -> str:
    """An access token for ``user``, valid for JWT_EXPIRATION_MINUTES (needs an app context)."""
    return create_access_token(
        identity=str(user.id), additional_claims={"username": user.username, "ver": user.token_version}
    )


def token_body(user: User) -> dict[str, Any]:
    """The answer that hands ``user`` a fresh token (``TokenOut``)."""
    expires = current_app.config["JWT_ACCESS_TOKEN_EXPIRES"]
    return {
        "access_token": issue_token(user),
        "token_type": "bearer",
        "expires_in": int(expires.total_seconds()),
    }


def unauthorized(slug: str, message: str) -> APIError:
    return APIError(401, slug, message, headers=BEARER)


class _Account(NamedTuple):
    """What a token check needs of its user's row."""

    id: int
    username: str
    is_admin: bool
    disabled: bool
    token_version: int


# Five columns by primary key, without the ORM: the check runs on every authenticated request.
_ACCOUNT = sa.select(
    User.__table__.c.id,
    User.__table__.c.username,
    User.__table__.c.is_admin,
    User.__table__.c.disabled,
    User.__table__.c.token_version,
).where(User.__table__.c.id == sa.bindparam("user_id"))


def _token_account(payload: dict[str, Any]) -> _Account | None:
    """The token's account, if it still exists under the same name. One query a request: the
    revocation check and the user lookup both read it, so it is kept on ``g`` for the token's ``sub``."""
    sub = payload.get("sub")
    held = g.get("token_account")
    if held is not None and held[0] == sub:
        account: _Account | None = held[1]
        return account
    try:
        user_id = int(sub)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    row = db.session.execute(_ACCOUNT, {"user_id": user_id}).first()
    account = _Account(*row) if row is not None else None
    if account is not None and account.username != payload.get("username"):
        account = None
    g.token_account = (sub, account)
    return account


@jwt.token_in_blocklist_loader
def _is_revoked(_header: dict[str, Any], payload: dict[str, Any]) -> bool:
    account = _token_account(payload)
    return account is not None and (account.disabled or payload.get("ver") != account.token_version)


@jwt.user_lookup_loader
def _load_user(_header: dict[str, Any], payload: dict[str, Any]) -> CurrentUser | None:
    """The token's user, as the snapshot the request works with (``identity.CurrentUser``)."""
    account = _token_account(payload)
    if account is None:
        return None
    return CurrentUser(id=account.id, username=account.username, is_admin=bool(account.is_admin))


# flask-jwt-extended answers 401/422 in its own shape when its decorators are used directly; ours are
# used everywhere, but keep any such path in our shape and always 401.
def _jwt_error(message: str) -> tuple[dict[str, Any], int, dict[str, str]]:
    return error_body(401, "invalid_token", message), 401, BEARER


jwt.unauthorized_loader(lambda reason: _jwt_error("A Bearer token is required."))
jwt.invalid_token_loader(lambda reason: _jwt_error("The token is malformed, forged or not valid here."))
jwt.expired_token_loader(lambda header, payload: _jwt_error("The token has expired."))
jwt.user_lookup_error_loader(lambda header, payload: _jwt_error("The token's user no longer exists."))
jwt.revoked_token_loader(lambda header, payload: _jwt_error("The token has been revoked."))
jwt.token_verification_failed_loader(lambda header, payload: _jwt_error("The token failed verification."))
