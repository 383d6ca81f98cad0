"""/history (read, delete) and /stats: admins only. Deleting history is audited."""

from __future__ import annotations

import hmac
from typing import Any

import sqlalchemy as sa
from apiflask import APIBlueprint
from flask import current_app
from marshmallow import RAISE

from .audit import audited, note
from .auth import admin_required
from .errors import ADMIN_ERRORS, APIError
from .extensions import db
from .models import History
from .recording import delete_history
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

bp = APIBlueprint("history", __name__, tag="History")


def _filters(query: dict[str, Any]) -> list[Any]:
    where = []
    if query.get("since") is not None:
        where.append(History.created_at >= query["since"])
    if query.get("until") is not None:
        where.append(History.created_at < query["until"])
    if query.get("status_code") is not None:
        where.append(History.status_code == query["status_code"])
    if query.get("username") is not None:
        where.append(History.username == query["username"])
    if query.get("model") is not None:
        where.append(History.model_name == query["model"])
    if query.get("version") is not None:
        where.append(History.model_version == query["version"])
    if query.get("request_id") is not None:
        where.append(History.request_id == query["request_id"])
    return where


@bp.get("/history")
@bp.doc(summary="Read the request history, newest first", security="BearerAuth", responses=ADMIN_ERRORS)
@admin_required
@bp.input(HistoryQuery, location="query", unknown=RAISE)
@bp.output(HistoryPage)
def list_history(query_data: dict[str, Any]) -> dict[str, Any]:
    """Filters combine; `since` is inclusive and `until` exclusive."""
    where = _filters(query_data)
    page, per_page = query_data["page"], query_data["per_page"]
    total = db.session.scalar(sa.select(sa.func.count()).select_from(History).where(*where)) or 0
    rows = db.session.scalars(
        sa.select(History)
        .where(*where)
        .order_by(History.created_at.desc(), History.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    return {"items": rows, "total": total, "page": page, "per_page": per_page}


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
