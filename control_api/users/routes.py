"""User management for admins: ``GET /users``, ``GET /users/<id>``, ``PATCH /users/<id>`` (disable or
enable, promote or demote) and ``DELETE /users/<id>``. Every change is audited.

Demoting and disabling revoke the user's tokens (``auth.accounts``); the last active admin cannot be
demoted, disabled or deleted (409 ``last_admin``). Admins may act on themselves otherwise: the audit row
says so (``details.self``), and their own tokens stop working like anyone's.
"""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from marshmallow import RAISE

from ..audit.trail import audited, note, set_target
from ..auth.accounts import delete_account, set_admin, set_disabled
from ..auth.guards import ADMIN_ERRORS, admin_required
from ..auth.identity import current_user
from ..auth.schemas import AccountOut, DeletedAccountOut
from ..auth.users import get_user
from ..extensions import db
from ..pagination import newest_first
from ..tables import User
from .schemas import UserPage, UserPatchIn, UserQuery

bp = APIBlueprint("users", __name__, tag="Users")

USER_PATH = "/users/<int:user_id>"
NOT_FOUND = {404: "No such user (user_not_found)"}
LAST_ADMIN = {409: "The last active admin cannot be demoted, disabled or deleted (last_admin)"}


def _target(kwargs: dict[str, Any]) -> str:
    return f"user:{kwargs.get('user_id')}"


def _actor_id() -> int:
    user = current_user()
    assert user is not None, "behind admin_required"
    return user.id


@bp.get("/users")
@bp.doc(summary="List the accounts, newest first", security="BearerAuth", responses=ADMIN_ERRORS)
@admin_required
@bp.input(UserQuery, location="query", unknown=RAISE)
@bp.output(UserPage)
def list_users(query_data: dict[str, Any]) -> dict[str, Any]:
    """Filters combine: `q` (a username prefix, any case), `is_admin`, `disabled`."""
    where = [
        getattr(User, name) == query_data[name] for name in ("is_admin", "disabled") if name in query_data
    ]
    if query_data.get("q"):
        where.append(User.username.istartswith(query_data["q"], autoescape=True))
    return newest_first(User, where, query_data)


@bp.get(USER_PATH)
@bp.doc(summary="One account", security="BearerAuth", responses={**ADMIN_ERRORS, **NOT_FOUND})
@admin_required
@bp.output(AccountOut)
def show_user(user_id: int) -> User:
    return get_user(user_id)


@bp.patch(USER_PATH)
@bp.doc(
    summary="Disable or enable an account, promote or demote it",
    security="BearerAuth",
    responses={**ADMIN_ERRORS, **NOT_FOUND, **LAST_ADMIN},
)
@admin_required
@audited("user.update", target=_target)
@bp.input(UserPatchIn, location="json")
@bp.output(AccountOut)
def update_user(user_id: int, json_data: dict[str, Any]) -> User:
    """`is_admin`, `disabled` or both (an empty body is a 422). Demoting or disabling revokes the account's
    tokens (401 `token_revoked`); a disabled account gets no new one (403 `account_disabled` at /token).
    Promoting and enabling revoke nothing."""
    user = get_user(user_id)
    set_target(user.username)
    actor = _actor_id()
    before = {"is_admin": user.is_admin, "disabled": user.disabled}
    if "is_admin" in json_data:
        set_admin(user, json_data["is_admin"], actor)
    if "disabled" in json_data:
        set_disabled(user, json_data["disabled"], actor)
    changed = {name: [before[name], value] for name, value in json_data.items() if before[name] != value}
    note(user_id=user.id, changed=changed, self=user.id == actor)
    db.session.commit()
    return user


@bp.delete(USER_PATH)
@bp.doc(
    summary="Delete an account",
    security="BearerAuth",
    responses={**ADMIN_ERRORS, **NOT_FOUND, **LAST_ADMIN},
)
@admin_required
@audited("user.delete", target=_target)
@bp.output(DeletedAccountOut)
def remove_user(user_id: int) -> dict[str, Any]:
    """The account's history rows are kept for the statistics, no longer linked to it."""
    user = get_user(user_id)
    set_target(user.username)
    actor = _actor_id()
    gone = delete_account(user, actor)
    note(user_id=gone["id"], history_rows_kept=gone["history_rows_kept"], self=gone["id"] == actor)
    db.session.commit()
    return gone
