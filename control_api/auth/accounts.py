"""Changing an account: its password, the admin role, disabling it, deleting it; and revoking its tokens.

Changes are made in the request's session; the caller commits. Revoking bumps ``token_version`` (every
token carries the version it was issued under): on a password change, a demotion and a disable. Promoting
and enabling revoke nothing. The last active (enabled) admin cannot be demoted, disabled or deleted: 409
``last_admin``, which says so when admins act on themselves. The active admins' rows are locked while that
is checked (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite has one writer at a time), so two admins
demoting each other at once cannot leave none.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..errors import APIError
from ..extensions import db
from ..tables import History, User


def revoke_tokens(user: User) -> None:
    """Every token issued to ``user`` so far stops working once this transaction commits."""
    user.token_version = User.token_version + 1  # in SQL: concurrent bumps never undo each other


def change_password(user: User, new_password: str) -> None:
    user.set_password(new_password)
    revoke_tokens(user)


def wrong_password() -> APIError:
    return APIError(403, "wrong_password", "The password is wrong.")


def check_password(user: User, password: str) -> None:
    """The account's password, confirmed again for a sensitive change: APIError 403 when wrong."""
    if not user.check_password(password):
        raise wrong_password()


def _ensure_not_last_admin(user: User, actor_id: int, change: str) -> None:
    if not user.is_admin or user.disabled:
        return
    active = db.session.scalars(
        sa.select(User.id)
        .where(User.is_admin.is_(True), User.disabled.is_(False))
        .order_by(User.id)
        .with_for_update()
    ).all()
    if any(user_id != user.id for user_id in active):
        return
    who = "You are" if user.id == actor_id else f"{user.username!r} is"
    raise APIError(
        409,
        "last_admin",
        f"{who} the last active admin: {change} would leave no admin. Promote another admin first.",
    )


def set_admin(user: User, is_admin: bool, actor_id: int) -> None:
    if is_admin == user.is_admin:
        return
    if not is_admin:
        _ensure_not_last_admin(user, actor_id, "removing the admin role")
        revoke_tokens(user)
    user.is_admin = is_admin


def set_disabled(user: User, disabled: bool, actor_id: int) -> None:
    if disabled == user.disabled:
        return
    if disabled:
        _ensure_not_last_admin(user, actor_id, "disabling the account")
        revoke_tokens(user)
    user.disabled = disabled


def delete_account(user: User, actor_id: int) -> dict[str, Any]:
    """Delete ``user``; returns ``DeletedAccountOut``. Their history rows stay (the statistics keep
    counting them), no longer linked to them: ``user_id`` NULL and ``username`` empty, as for anonymous
    requests."""
    _ensure_not_last_admin(user, actor_id, "deleting the account")
    unlinked: Any = db.session.execute(
        sa.update(History).where(History.user_id == user.id).values(user_id=None, username="")
    )
    gone = {"id": user.id, "username": user.username, "history_rows_kept": int(unlinked.rowcount or 0)}
    db.session.delete(user)
    return gone
