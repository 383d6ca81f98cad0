"""The decorators that guard the endpoints: ``token_required`` (any signed-in user) and
``admin_required``. Both make the token's user this request's user (``identity.current_user``)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask_jwt_extended import current_user as token_user
from flask_jwt_extended import verify_jwt_in_request
from flask_jwt_extended.exceptions import (
    JWTExtendedException,
    NoAuthorizationError,
    RevokedTokenError,
    UserLookupError,
)
from jwt import ExpiredSignatureError, PyJWTError

from ..errors import APIError
from .identity import CurrentUser, sign_in
from .tokens import unauthorized

F = TypeVar("F", bound=Callable[..., Any])


def authenticate() -> CurrentUser:
    """The user behind the request's Bearer token, or a 401 APIError."""
    try:
        verify_jwt_in_request()
    except NoAuthorizationError as exc:
        raise unauthorized(
            "missing_token", "A Bearer token is required: Authorization: Bearer <token>."
        ) from exc
    except ExpiredSignatureError as exc:
        raise unauthorized("token_expired", "The token has expired; get a new one from /token.") from exc
    except RevokedTokenError as exc:
        raise unauthorized(
            "token_revoked",
            "The token was revoked (password changed, admin role removed or account disabled); "
            "get a new one from /token.",
        ) from exc
    except UserLookupError as exc:
        raise unauthorized("invalid_token", "The token's user no longer exists.") from exc
    except (JWTExtendedException, PyJWTError) as exc:
        raise unauthorized("invalid_token", "The token is malformed, forged or not valid here.") from exc
    return sign_in(token_user)


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


# OpenAPI responses shared by every endpoint that needs a token, and by every admin-only endpoint.
TOKEN_ERRORS = {401: "No token, or an invalid, expired or revoked (token_revoked) one"}
ADMIN_ERRORS = {**TOKEN_ERRORS, 403: "Not an admin"}
