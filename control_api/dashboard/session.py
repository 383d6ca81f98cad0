"""The dashboard's sign-in: the same JWTs as the API, held in an HttpOnly cookie.

flask-jwt-extended reads tokens from the Authorization header and from the ``access_token_cookie``
cookie. A cookie-held token needs its CSRF token (the ``csrf_access_token`` cookie, readable by the page)
sent back in an ``X-CSRF-TOKEN`` header or a ``csrf_token`` form field on every state-changing request, so
another site cannot make the browser act with it; bearer tokens are unaffected. The cookie is SameSite=Strict,
and Secure when DASHBOARD_COOKIE_SECURE is set (behind HTTPS).
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_jwt_extended import current_user, verify_jwt_in_request
from flask_jwt_extended.exceptions import JWTExtendedException
from jwt import PyJWTError

from ..auth.identity import CurrentUser
from ..auth.users import find_user
from ..tables import User


def configure(app: Flask) -> None:
    app.config.update(
        JWT_TOKEN_LOCATION=["headers", "cookies"],
        JWT_COOKIE_CSRF_PROTECT=True,
        JWT_CSRF_CHECK_FORM=True,
        JWT_COOKIE_SAMESITE="Strict",
        JWT_COOKIE_SECURE=bool(app.config.get("DASHBOARD_COOKIE_SECURE")),
        JWT_ACCESS_COOKIE_PATH="/",
        JWT_SESSION_COOKIE=True,
    )


def cookie_user() -> CurrentUser | None:
    """The user of the request's cookie-held token, or None (no cookie, expired, revoked, forged)."""
    try:
        verify_jwt_in_request(locations=["cookies"])
    except (JWTExtendedException, PyJWTError):
        return None
    user: Any = current_user
    return user if isinstance(user, CurrentUser) else None


def check_login(username: str, password: str) -> User | None:
    """The account for these credentials, if they are right and it is enabled (any role)."""
    user = find_user(username)
    if user is None:
        User.burn_password_check(password)
        return None
    if not user.check_password(password) or user.disabled:
        return None
    return user
