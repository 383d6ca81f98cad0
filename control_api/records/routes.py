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
from ..openapi import also_answers
from ..pagination import newest_first
from ..tables import History
from .export import csv_response, wants_csv
from .filters import history_filters
from .schemas import (
    AdminTokenHeader,
    DeletedOut,
    DeleteQuery,
    HistoryListQuery,
    HistoryPage,
    StatsOut,
    StatsQuery,
    TimeseriesOut,
    TimeseriesQuery,
)
from .stats import compute_stats
from .timeseries import MAX_POINTS, timeseries
from .writes import delete_history

bp = APIBlueprint("history", __name__, tag="History")
also_answers(
    "/history", "get", "text/csv", {"type": "string", "description": "one header line, then a row each"}
)


@bp.get("/history")
@bp.doc(
    summary="Read the request history, newest first (JSON pages or a CSV export)",
    security="BearerAuth",
    responses={
        **ADMIN_ERRORS,
        422: "Bad filters, or a CSV export of more than HISTORY_EXPORT_MAX_ROWS rows (export_too_large)",
    },
)
@admin_required
@bp.input(HistoryListQuery, location="query", unknown=RAISE)
@bp.output(HistoryPage, content_type="application/json")
def list_history(query_data: dict[str, Any]) -> Any:
    """Filters combine; `since` is inclusive and `until` exclusive.

    With `format=csv` or `Accept: text/csv`: every matching row as a streamed CSV file (`text/csv`, one
    header line, `result` as JSON), at most HISTORY_EXPORT_MAX_ROWS rows (1,000,000 by default)."""
    where = history_filters(query_data)
    if wants_csv(query_data):
        return csv_response(where)
    return newest_first(History, where, query_data)


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
    """Totals, error rate, latency percentiles, input sizes, status codes, per-model-version counts, the
    top-1 class distribution and the usage per user.

    `model` and `version` narrow it all to one model version (compare two versions with two calls).
    Latency percentiles are nearest-rank over the successful requests (`status=ok`, the default), the
    failed ones (`error`) or all; the answer says which."""
    return compute_stats(
        query_data.get("since"),
        query_data.get("until"),
        query_data.get("model"),
        query_data.get("version"),
        query_data["status"],
    )


@bp.get("/stats/timeseries")
@bp.doc(
    summary="Request statistics over time",
    security="BearerAuth",
    responses={
        **ADMIN_ERRORS,
        422: f"Unknown bucket, since after until, or over {MAX_POINTS} buckets (range_too_large)",
    },
)
@admin_required
@bp.input(TimeseriesQuery, location="query", unknown=RAISE)
@bp.output(TimeseriesOut)
def stats_timeseries(query_data: dict[str, Any]) -> dict[str, Any]:
    """Per bucket (`1m`, `1h`, `1d`): requests, errors, images, p50/p95/p99 latency of the successful
    requests (from a histogram: within 2.5 %), and the split per model version.

    The range is widened to whole buckets; without `since`/`until` it is the last 60 minutes, 48 hours or
    30 days, up to the current bucket. Buckets without requests are there with zeros."""
    return timeseries(
        query_data["bucket"],
        query_data.get("since"),
        query_data.get("until"),
        query_data.get("model"),
        query_data.get("version"),
    )
