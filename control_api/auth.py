"""Accounts and JWTs: /register, /token, and the decorators that guard the other endpoints.

Tokens are HS256 (or HS384/HS512) JWTs signed with SECRET_KEY; ``sub`` is the user id as a string
(PyJWT 2.10+ requires a string) and ``username`` is checked as well, so a token cannot outlive its
user, even if a deleted user's id were ever reused. Every JWT failure is a 401 in our error shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import sqlalchemy as sa
from apiflask import APIBlueprint
from flask import current_app, g
from flask_jwt_extended import create_access_token, current_user, verify_jwt_in_request
from flask_jwt_extended.exceptions import JWTExtendedException, NoAuthorizationError, UserLookupError
from jwt import ExpiredSignatureError, PyJWTError
from sqlalchemy.exc import IntegrityError

from .errors import APIError, error_body
from .extensions import db, jwt
from .models import User
from .ratelimit import rate_limited
from .schemas import USERNAME_RE, RegisterIn, TokenIn, TokenOut, UserOut

bp = APIBlueprint("auth", __name__, tag="Auth")

F = TypeVar("F", bound=Callable[..., Any])
BEARER = {"WWW-Authenticate": 'Bearer realm="control-api"'}


def _unauthorized(slug: str, message: str) -> APIError:
    return APIError(401, slug, message, headers=BEARER)


def authenticate() -> User:
    """The user behind the request's Bearer token, or a 401 APIError."""
    try:
        verify_jwt_in_request()
    except NoAuthorizationError as exc:
        raise _unauthorized(
            "missing_token", "A Bearer token is required: Authorization: Bearer <token>."
        ) from exc
    except ExpiredSignatureError as exc:
        raise _unauthorized("token_expired", "The token has expired; get a new one from /token.") from exc
    except UserLookupError as exc:
        raise _unauthorized("invalid_token", "The token's user no longer exists.") from exc
    except (JWTExtendedException, PyJWTError) as exc:
        raise _unauthorized("invalid_token", "The token is malformed, forged or not valid here.") from exc
    user: User = current_user
    g.user = user
    # Read now: after the request's commit the ORM expires it, and the access log would query it again.
    g.username = user.username
    return user


def token_required(f: F) -> F:
    """Any signed-in user."""

    @wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        authenticate()
        return f(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def admin_required(f: F) -> F:
    """A signed-in admin: 401 without a valid token, 403 for a non-admin."""

    @wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not authenticate().is_admin:
            raise APIError(403, "admin_required", "This endpoint is for admins only.")
        return f(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@jwt.user_lookup_loader
def _load_user(_header: dict[str, Any], payload: dict[str, Any]) -> User | None:
    try:
        user_id = int(payload["sub"])
    except (KeyError, TypeError, ValueError):
        return None
    user = db.session.get(User, user_id)
    if user is None or user.username != payload.get("username"):
        return None
    return user


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


def find_user(username: str) -> User | None:
    if not re.match(USERNAME_RE, username):
        return None  # cannot exist; and keeps NUL bytes and the like away from the database
    return db.session.scalar(sa.select(User).where(User.username == username))


def create_user(username: str, password: str, is_admin: bool = False) -> User:
    """Insert a user; APIError 409 when the name is taken (also when a concurrent insert wins)."""
    if find_user(username) is not None:
        raise APIError(409, "username_taken", f"The username {username!r} is already taken.")
    user = User(username=username, is_admin=is_admin)
    user.set_password(password)
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        raise APIError(409, "username_taken", f"The username {username!r} is already taken.") from exc
    return user


@bp.post("/register")
@bp.doc(
    summary="Create an account",
    responses={
        409: "Username taken",
        422: "Invalid username or password",
        429: "Too many registrations from this address (see Retry-After)",
    },
)
@rate_limited("register")
@bp.input(RegisterIn, location="json")
@bp.output(UserOut, status_code=201)
def register(json_data: dict[str, Any]) -> User:
    """Usernames: 3-64 of [A-Za-z0-9_.-]. Passwords: 8-128 characters, any script."""
    return create_user(json_data["username"], json_data["password"])


@bp.post("/token")
@bp.doc(
    summary="Get an access token",
    responses={
        401: "Wrong username or password",
        429: "Too many attempts from this address (see Retry-After)",
    },
)
@rate_limited("token")
@bp.input(TokenIn, location="json_or_form")
@bp.output(TokenOut)
def token(json_or_form_data: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:
    """The OAuth2 password flow: form fields (or JSON) username and password."""
    username, password = json_or_form_data["username"], json_or_form_data["password"]
    user = find_user(username)
    if user is None:
        User.burn_password_check(password)  # an unknown name takes as long as a wrong password
    if user is None or not user.check_password(password):
        raise _unauthorized("invalid_credentials", "Wrong username or password.")
    expires = current_app.config["JWT_ACCESS_TOKEN_EXPIRES"]
    access_token = create_access_token(identity=str(user.id), additional_claims={"username": user.username})
    body = {"access_token": access_token, "token_type": "bearer", "expires_in": int(expires.total_seconds())}
    return body, 200, {"Cache-Control": "no-store", "Pragma": "no-cache"}
