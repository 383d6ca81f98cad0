"""/stats, computed in the database: totals, error rate, latency, input sizes, status codes and
per-model-version counts over a since/until range.

Counts, sums and extremes come from ``aggregates`` (the hourly rollup plus the raw rows of the partial
hours at the edges); percentiles from ``percentiles`` (an index walk). ``model`` and ``version`` narrow
everything to one model (and version), so two versions can be compared side by side; the rollup is
keyed by them, and the processing_time index carries them.

Latency percentiles are over the successful requests unless ``status`` says otherwise (a 401 answered in
a millisecond is not a fast prediction). After the retention purge (``retention``) the rollups still hold
the purged rows' counts and sums, but the percentiles can only walk the rows kept: then they cover the kept
part of the range, and the answer says from when (``percentiles_since``). A range that starts in purged
time counts that first hour whole.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..extensions import db
from ..tables import History, HistoryRollup
from .aggregates import Agg, collect
from .breakdowns import class_distribution, user_usage
from .percentiles import ModelFilter, percentiles, status_matches
from .writes import hour_floor


def _mean(total: float, count: int) -> float | None:
    return round(total / count, 3) if count else None


def _extremes(mean: float | None, low: Any, high: Any) -> dict[str, Any]:
    return {"mean": mean, "min": low, "max": high}


def oldest_kept() -> tuple[bool, datetime | None]:
    """(whether rows were purged, the oldest row kept): purged when the rollup starts before the rows."""
    oldest = db.session.scalar(sa.select(sa.func.min(History.created_at)))
    first_bucket = db.session.scalar(sa.select(sa.func.min(HistoryRollup.bucket)))
    purged = first_bucket is not None and (oldest is None or first_bucket < hour_floor(oldest))
    return purged, oldest


def _percentiles(
    since: datetime | None,
    until: datetime | None,
    models: ModelFilter,
    status: str,
    counted: int,
    window: int,
) -> tuple[dict[str, float | None], datetime | None]:
    """The percentiles over [since, until) and, when the range reaches purged rows, where they start."""
    all_rows = window
    if since is not None or until is not None:
        all_rows = int(db.session.scalar(sa.select(sa.func.sum(HistoryRollup.request_count))) or 0)
    purged, oldest = oldest_kept()
    if not purged or (since is not None and oldest is not None and since >= oldest):
        return percentiles(counted, all_rows, window, since, until, models, status), None
    if oldest is None or (until is not None and until <= oldest):
        return percentiles(0, 0, 0, since, until, models, status), oldest
    kept = collect(oldest, until)
    kept_window = sum(agg.count for agg in kept.values())
    kept_count = sum(
        agg.count
        for (code, m, v), agg in kept.items()
        if models.matches(m, v) and status_matches(status, code)
    )
    return percentiles(kept_count, all_rows, kept_window, oldest, until, models, status), oldest


def compute_stats(
    since: datetime | None = None,
    until: datetime | None = None,
    model: str | None = None,
    version: str | None = None,
    status: str = "ok",
) -> dict[str, Any]:
    """The /stats document for [since, until), optionally for one model and/or version; percentiles over
    ``status`` (ok, error, all)."""
    models = ModelFilter(model, version)
    counts_since = since
    if since is not None:
        purged, oldest = oldest_kept()
        if purged and (oldest is None or since < oldest):
            counts_since = hour_floor(since)
    all_groups = collect(counts_since, until)
    window_rows = sum(agg.count for agg in all_groups.values())
    groups = {key: agg for key, agg in all_groups.items() if models.matches(key[1], key[2])}
    overall = Agg()
    timed = Agg()  # the requests of ``status``: the latency figures
    status_codes: dict[str, int] = {}
    by_model: dict[str, dict[str, dict[str, Any]]] = {}
    for (code, model_name, model_version), agg in sorted(groups.items()):
        if agg.count == 0:
            continue
        overall.merge(agg)
        if status_matches(status, code):
            timed.merge(agg)
        status_codes[str(code)] = status_codes.get(str(code), 0) + agg.count
        if model_name:
            entry = by_model.setdefault(model_name, {}).setdefault(
                model_version or "unknown",
                {"total_requests": 0, "successful_requests": 0, "failed_requests": 0, "_time_sum": 0.0},
            )
            entry["total_requests"] += agg.count
            entry["successful_requests" if code < 400 else "failed_requests"] += agg.count
            entry["_time_sum"] += agg.time_sum
    for versions in by_model.values():
        for entry in versions.values():
            entry["mean_processing_time_ms"] = _mean(entry.pop("_time_sum"), entry["total_requests"])
            entry["error_rate"] = round(entry["failed_requests"] / entry["total_requests"], 6)
    total = overall.count
    successful = sum(n for code, n in status_codes.items() if int(code) < 400)
    quantiles, percentiles_since = _percentiles(since, until, models, status, timed.count, window_rows)
    return {
        "status": status,
        "percentiles_since": percentiles_since,
        "total_requests": total,
        "successful_requests": successful,
        "failed_requests": total - successful,
        "error_rate": round((total - successful) / total, 6) if total else 0.0,
        "processing_time_ms": {
            **_extremes(_mean(timed.time_sum, timed.count), timed.time_min, timed.time_max),
            **quantiles,
        },
        "input": {
            "size_bytes": _extremes(
                _mean(overall.size_sum, overall.size_count), overall.size_min, overall.size_max
            ),
            "width": _extremes(
                _mean(overall.width_sum, overall.dims_count), overall.width_min, overall.width_max
            ),
            "height": _extremes(
                _mean(overall.height_sum, overall.dims_count), overall.height_min, overall.height_max
            ),
        },
        "status_codes": status_codes,
        "by_model": by_model,
        "classes": class_distribution(counts_since, until, models),
        "users": user_usage(counts_since, until, models),
    }
