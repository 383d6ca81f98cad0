"""Accounts: finding one by name or id, creating one, and what a username and a password may be.

Usernames are unique regardless of case: "Alice" and "alice" cannot both exist, and finding one by name
ignores case (the stored spelling is the one returned).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from ..errors import APIError
from ..extensions import db
from ..names import is_username
from ..tables import User
from .identity import current_user

# Any script; bcrypt sees a SHA-256 of it (tables.User), so long passwords are not truncated.
PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 128
MAX_USER_ID = 2**31 - 1


def is_password(value: str) -> bool:
    return PASSWORD_MIN_LENGTH <= len(value) <= PASSWORD_MAX_LENGTH


def find_user(username: str) -> User | None:
    """The user called ``username`` in any case (the unique index on lower(username) finds it)."""
    if not is_username(username):
        return None  # cannot exist; and keeps NUL bytes and the like away from the database
    return db.session.scalar(sa.select(User).where(sa.func.lower(User.username) == username.lower()))


def get_user(user_id: int) -> User:
    """The user with id ``user_id``, or APIError 404."""
    # Ids are 32-bit: a larger number names no one (and must not reach the driver, which may refuse it).
    user = db.session.get(User, user_id) if 0 < user_id <= MAX_USER_ID else None
    if user is None:
        raise APIError(404, "user_not_found", f"There is no user with id {user_id}.")
    return user


def signed_in_account() -> User:
    """The signed-in user's account row (the token check loaded it: the session hands it back unqueried)."""
    user = current_user()
    if user is None:
        raise RuntimeError("signed_in_account() needs a view behind token_required or admin_required")
    return get_user(user.id)


def _taken(username: str) -> APIError:
    return APIError(409, "username_taken", f"The username {username!r} is already taken (in any case).")


def create_user(username: str, password: str, is_admin: bool = False) -> User:
    """Insert a user; APIError 409 when the name is taken in any case (also when a concurrent insert
    wins)."""
    if find_user(username) is not None:
        raise _taken(username)
    user = User(username=username, is_admin=is_admin)
    user.set_password(password)
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        raise _taken(username) from exc
    return user
