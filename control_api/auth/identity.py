"""Who is making this request: the one place the views, the rate limiter, the audit trail, the history
and the access log read the signed-in user from.

The guards (``token_required``, ``admin_required``) set it once the token checks out. It is a snapshot
of the account, not the ORM object: after the request's commit the ORM expires its objects, and reading
one again (in the access log, after the response) would query the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import g, has_request_context


@dataclass(frozen=True)
class CurrentUser:
    id: int
    username: str
    is_admin: bool


def current_user() -> CurrentUser | None:
    """The signed-in user; None before the guards ran, for anonymous requests and outside a request."""
    if not has_request_context():
        return None
    user: CurrentUser | None = g.get("current_user")
    return user


def sign_in(user: Any) -> CurrentUser:
    """Make ``user`` (a ``tables.User`` or a ``CurrentUser``) this request's user."""
    signed_in = CurrentUser(id=int(user.id), username=str(user.username), is_admin=bool(user.is_admin))
    g.current_user = signed_in
    return signed_in
