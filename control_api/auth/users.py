"""Accounts: finding one by name, creating one, and what a username and a password may be."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from ..errors import APIError
from ..extensions import db
from ..names import is_username
from ..tables import User

# Any script; bcrypt sees a SHA-256 of it (tables.User), so long passwords are not truncated.
PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 128


def is_password(value: str) -> bool:
    return PASSWORD_MIN_LENGTH <= len(value) <= PASSWORD_MAX_LENGTH


def find_user(username: str) -> User | None:
    if not is_username(username):
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
