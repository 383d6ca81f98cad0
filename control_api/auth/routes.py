"""``POST /register`` (create an account) and ``POST /token`` (the OAuth2 password flow)."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import current_app

from ..rate_limits import rate_limited
from ..tables import User
from .schemas import RegisterIn, TokenIn, TokenOut, UserOut
from .tokens import issue_token, unauthorized
from .users import create_user, find_user

bp = APIBlueprint("auth", __name__, tag="Auth")


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
        raise unauthorized("invalid_credentials", "Wrong username or password.")
    expires = current_app.config["JWT_ACCESS_TOKEN_EXPIRES"]
    body = {
        "access_token": issue_token(user),
        "token_type": "bearer",
        "expires_in": int(expires.total_seconds()),
    }
    return body, 200, {"Cache-Control": "no-store", "Pragma": "no-cache"}
