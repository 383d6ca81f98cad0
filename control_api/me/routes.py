"""Self-service, for any signed-in user: ``GET /me``, ``GET /me/history``, ``GET /me/usage``,
``POST /me/password`` and ``DELETE /me``.

Nothing here can change the admin role: the input schemas are strict (an unknown field such as
``is_admin`` is a 422) and only name what each action needs. Deleting the account is audited.
"""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from marshmallow import RAISE

from ..audit.trail import audited, note
from ..auth.accounts import change_password, check_password, delete_account
from ..auth.guards import TOKEN_ERRORS, token_required
from ..auth.identity import current_user
from ..auth.schemas import AccountOut, DeletedAccountOut, TokenOut
from ..auth.tokens import NO_STORE, token_body
from ..auth.users import signed_in_account
from ..extensions import db
from ..pagination import newest_first
from ..rate_limits import rate_limited
from ..records.filters import history_filters
from ..records.schemas import HistoryPage
from ..tables import History, User
from .schemas import AccountDeleteIn, OwnHistoryQuery, PasswordChangeIn, UsageOut, UsageQuery
from .usage import daily_usage

bp = APIBlueprint("me", __name__, tag="Me")

WRONG_PASSWORD = {403: "The password is wrong (wrong_password)"}


def _my_name(_kwargs: dict[str, Any]) -> str | None:
    user = current_user()
    return user.username if user is not None else None


@bp.get("/me")
@bp.doc(summary="Your account", security="BearerAuth", responses=TOKEN_ERRORS)
@token_required
@bp.output(AccountOut)
def show_me() -> User:
    return signed_in_account()


@bp.get("/me/history")
@bp.doc(summary="Your own requests, newest first", security="BearerAuth", responses=TOKEN_ERRORS)
@token_required
@bp.input(OwnHistoryQuery, location="query", unknown=RAISE)
@bp.output(HistoryPage)
def my_history(query_data: dict[str, Any]) -> dict[str, Any]:
    """`GET /history`'s filters and page, over your rows only. Filters combine; `since` is inclusive and
    `until` exclusive."""
    user = signed_in_account()
    return newest_first(History, [History.user_id == user.id, *history_filters(query_data)], query_data)


@bp.get("/me/usage")
@bp.doc(
    summary="Your requests, images and errors per UTC day",
    security="BearerAuth",
    responses={**TOKEN_ERRORS, 422: "Invalid dates, since after until, or a window over 366 days"},
)
@token_required
@bp.input(UsageQuery, location="query", unknown=RAISE)
@bp.output(UsageOut)
def my_usage(query_data: dict[str, Any]) -> dict[str, Any]:
    """Every day from `since` to `until` (both included, UTC, YYYY-MM-DD), the last 30 days by default,
    366 at most."""
    return daily_usage(signed_in_account().id, query_data["since"], query_data["until"])


@bp.post("/me/password")
@bp.doc(
    summary="Change your password",
    security="BearerAuth",
    responses={
        **TOKEN_ERRORS,
        **WRONG_PASSWORD,
        422: "The new password is invalid or the same",
        429: "Too many attempts (see Retry-After)",
    },
)
@token_required
@rate_limited("password_change")
@bp.input(PasswordChangeIn, location="json")
@bp.output(TokenOut)
def change_my_password(json_data: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Every token issued before stops working (401 `token_revoked`); the answer holds a fresh one."""
    user = signed_in_account()
    check_password(user, json_data["current_password"])
    change_password(user, json_data["new_password"])
    db.session.commit()
    return token_body(user), 200, NO_STORE


@bp.delete("/me")
@bp.doc(
    summary="Delete your account",
    security="BearerAuth",
    responses={
        **TOKEN_ERRORS,
        **WRONG_PASSWORD,
        409: "You are the last active admin (last_admin)",
        429: "Too many attempts (see Retry-After)",
    },
)
@token_required
@rate_limited("account_delete")
@audited("user.delete_self", target=_my_name)
@bp.input(AccountDeleteIn, location="json")
@bp.output(DeletedAccountOut)
def delete_me(json_data: dict[str, Any]) -> dict[str, Any]:
    """Confirm with your password. Your history rows are kept for the statistics, no longer linked to
    you; the name becomes free to register again."""
    user = signed_in_account()
    check_password(user, json_data["password"])
    gone = delete_account(user, user.id)
    note(user_id=gone["id"], history_rows_kept=gone["history_rows_kept"])
    db.session.commit()
    return gone
