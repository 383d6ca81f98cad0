"""``POST /register`` (create an account) and ``POST /token`` (the OAuth2 password flow)."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint

from ..errors import APIError
from ..rate_limits import rate_limited
from ..tables import User
from .schemas import RegisterIn, TokenIn, TokenOut, UserOut
from .tokens import NO_STORE, token_body, unauthorized
from .users import create_user, find_user

bp = APIBlueprint("auth", __name__, tag="Auth")


@bp.post("/register")
@bp.doc(
    summary="Create an account",
    responses={
        409: "Username taken (in any case: Alice and alice are the same name)",
        422: "Invalid username or password",
        429: "Too many registrations from this address (see Retry-After)",
    },
)
@rate_limited("register")
@bp.input(RegisterIn, location="json")
@bp.output(UserOut, status_code=201)
def register(json_data: dict[str, Any]) -> User:
    """Usernames: 3-64 of [A-Za-z0-9_.-], unique in any case. Passwords: 8-128 characters, any script."""
    return create_user(json_data["username"], json_data["password"])


@bp.post("/token")
@bp.doc(
    summary="Get an access token",
    responses={
        401: "Wrong username or password",
        403: "The account is disabled (account_disabled)",
        429: "Too many attempts from this address, or for this username (see Retry-After)",
    },
)
@rate_limited("token", "token_username")
@bp.input(TokenIn, location="json_or_form")
@bp.output(TokenOut)
def token(json_or_form_data: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:
    """The OAuth2 password flow: form fields (or JSON) username and password. The username is matched
    in any case; the token is for the account's stored spelling."""
    username, password = json_or_form_data["username"], json_or_form_data["password"]
    user = find_user(username)
    if user is None:
        User.burn_password_check(password)  # an unknown name takes as long as a wrong password
    if user is None or not user.check_password(password):
        raise unauthorized("invalid_credentials", "Wrong username or password.")
    if user.disabled:
        raise APIError(403, "account_disabled", "This account is disabled; ask an admin to enable it.")
    return token_body(user), 200, NO_STORE
