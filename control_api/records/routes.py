"""``GET /history`` (newest first, filtered), ``DELETE /history`` and ``GET /stats``: admins only; deleting
is audited."""

from __future__ import annotations

import hmac
from typing import Any

from apiflask import APIBlueprint
from flask import current_app
from marshmallow import RAISE

from ..audit.trail import audited, note
from ..auth.guards import ADMIN_ERRORS, admin_required
from ..errors import APIError
from ..pagination import newest_first
from ..tables import History
from .filters import history_filters
from .schemas import (
    AdminTokenHeader,
    DeletedOut,
    DeleteQuery,
    HistoryPage,
    HistoryQuery,
    StatsOut,
    StatsQuery,
)
from .stats import compute_stats
from .writes import delete_history

bp = APIBlueprint("history", __name__, tag="History")


@bp.get("/history")
@bp.doc(summary="Read the request history, newest first", security="BearerAuth", responses=ADMIN_ERRORS)
@admin_required
@bp.input(HistoryQuery, location="query", unknown=RAISE)
@bp.output(HistoryPage)
def list_history(query_data: dict[str, Any]) -> dict[str, Any]:
    """Filters combine; `since` is inclusive and `until` exclusive."""
    return newest_first(History, history_filters(query_data), query_data)


@bp.delete("/history")
@bp.doc(
    summary="Delete history rows",
    security="BearerAuth",
    responses={**ADMIN_ERRORS, 403: "Not an admin, or a wrong, missing or unconfigured X-Admin-Token"},
)
@admin_required
@audited("history.delete", target=lambda _: "history")
@bp.input(AdminTokenHeader, location="headers")
@bp.input(DeleteQuery, location="query", unknown=RAISE)
@bp.output(DeletedOut)
def clear_history(headers_data: dict[str, Any], query_data: dict[str, Any]) -> dict[str, int]:
    """Needs an admin token and the `X-Admin-Token` header; `before` limits it to older rows."""
    expected = current_app.config.get("ADMIN_TOKEN") or ""
    if not expected:
        raise APIError(
            403, "admin_token_not_configured", "History deletion is disabled: ADMIN_TOKEN is not set."
        )
    given = headers_data.get("admin_token") or ""
    # Constant time, on bytes: compare_digest refuses non-ASCII str.
    if not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
        raise APIError(403, "invalid_admin_token", "The X-Admin-Token header is missing or wrong.")
    deleted = delete_history(query_data.get("before"))
    note(deleted=deleted)
    return {"deleted": deleted}


@bp.get("/stats")
@bp.doc(summary="Request statistics", security="BearerAuth", responses=ADMIN_ERRORS)
@admin_required
@bp.input(StatsQuery, location="query", unknown=RAISE)
@bp.output(StatsOut)
def stats(query_data: dict[str, Any]) -> dict[str, Any]:
    """Totals, error rate, latency percentiles, input sizes, status codes and per-model-version counts.

    `model` and `version` narrow it all to one model version (compare two versions with two calls)."""
    return compute_stats(
        query_data.get("since"), query_data.get("until"), query_data.get("model"), query_data.get("version")
    )
