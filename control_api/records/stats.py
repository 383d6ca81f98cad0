"""/stats, computed in the database: totals, error rate, latency, input sizes, status codes and
per-model-version counts over a since/until range.

Counts, sums and extremes come from ``aggregates`` (the hourly rollup plus the raw rows of the partial
hours at the edges); percentiles from ``percentiles`` (an index walk). ``model`` and ``version`` narrow
everything to one model (and version), so two versions can be compared side by side; the rollup is
keyed by them, and the processing_time index carries them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..extensions import db
from ..tables import HistoryRollup
from .aggregates import Agg, collect
from .percentiles import ModelFilter, percentiles


def _mean(total: float, count: int) -> float | None:
    return round(total / count, 3) if count else None


def _extremes(mean: float | None, low: Any, high: Any) -> dict[str, Any]:
    return {"mean": mean, "min": low, "max": high}


def compute_stats(
    since: datetime | None = None,
    until: datetime | None = None,
    model: str | None = None,
    version: str | None = None,
) -> dict[str, Any]:
    """The /stats document for [since, until), optionally for one model and/or version."""
    models = ModelFilter(model, version)
    all_groups = collect(since, until)
    window_rows = sum(agg.count for agg in all_groups.values())
    groups = {key: agg for key, agg in all_groups.items() if models.matches(key[1], key[2])}
    overall = Agg()
    status_codes: dict[str, int] = {}
    by_model: dict[str, dict[str, dict[str, Any]]] = {}
    for (status, model_name, model_version), agg in sorted(groups.items()):
        if agg.count == 0:
            continue
        overall.merge(agg)
        status_codes[str(status)] = status_codes.get(str(status), 0) + agg.count
        if model_name:
            entry = by_model.setdefault(model_name, {}).setdefault(
                model_version or "unknown",
                {"total_requests": 0, "successful_requests": 0, "failed_requests": 0, "_time_sum": 0.0},
            )
            entry["total_requests"] += agg.count
            entry["successful_requests" if status < 400 else "failed_requests"] += agg.count
            entry["_time_sum"] += agg.time_sum
    for versions in by_model.values():
        for entry in versions.values():
            entry["mean_processing_time_ms"] = _mean(entry.pop("_time_sum"), entry["total_requests"])
            entry["error_rate"] = round(entry["failed_requests"] / entry["total_requests"], 6)
    total = overall.count
    successful = sum(n for code, n in status_codes.items() if int(code) < 400)
    all_rows = window_rows
    if since is not None or until is not None:
        all_rows = int(db.session.scalar(sa.select(sa.func.sum(HistoryRollup.request_count))) or 0)
    quantiles = percentiles(total, all_rows, window_rows, since, until, models)
    return {
        "total_requests": total,
        "successful_requests": successful,
        "failed_requests": total - successful,
        "error_rate": round((total - successful) / total, 6) if total else 0.0,
        "processing_time_ms": {
            **_extremes(_mean(overall.time_sum, total), overall.time_min, overall.time_max),
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
    }
