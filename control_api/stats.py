"""/stats, computed in the database.

Counts, sums, minima and maxima come from the hourly rollup (``history_rollup``), plus the raw rows of
the partial hours at the edges of a since/until range: a handful of grouped queries, never a scan of
all history. Percentiles are nearest-rank (the value at rank ceil(p * n)), read off an index with
``LIMIT 1 OFFSET k`` on both backends: PostgreSQL's ``percentile_cont``/``percentile_disc`` sort every
row in range (about 300 ms for a million), the index walk takes a tenth of that.

``model`` and ``version`` narrow everything to one model (and version), so two versions can be compared
side by side; the rollup is keyed by them, and the processing_time index carries them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from .extensions import db
from .models import History, HistoryRollup
from .recording import dialect_name, hour_ceil, hour_floor

PERCENTILES = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))


@dataclass
class Agg:
    """Counts, sums and extremes of one (status, model, version) group."""

    count: int = 0
    time_sum: float = 0.0
    time_min: float | None = None
    time_max: float | None = None
    size_count: int = 0
    size_sum: int = 0
    size_min: int | None = None
    size_max: int | None = None
    dims_count: int = 0
    width_sum: int = 0
    width_min: int | None = None
    width_max: int | None = None
    height_sum: int = 0
    height_min: int | None = None
    height_max: int | None = None

    def merge(self, other: Agg) -> None:
        for field in fields(self):
            name = field.name
            mine, theirs = getattr(self, name), getattr(other, name)
            if theirs is None:
                continue
            if name.endswith("_min"):
                setattr(self, name, theirs if mine is None else min(mine, theirs))
            elif name.endswith("_max"):
                setattr(self, name, theirs if mine is None else max(mine, theirs))
            else:
                setattr(self, name, mine + theirs)


def _agg_columns(source: Any) -> list[Any]:
    f = sa.func
    if source is HistoryRollup:
        r = HistoryRollup
        return [
            f.sum(r.request_count),
            f.sum(r.time_sum),
            f.min(r.time_min),
            f.max(r.time_max),
            f.sum(r.size_count),
            f.sum(r.size_sum),
            f.min(r.size_min),
            f.max(r.size_max),
            f.sum(r.dims_count),
            f.sum(r.width_sum),
            f.min(r.width_min),
            f.max(r.width_max),
            f.sum(r.height_sum),
            f.min(r.height_min),
            f.max(r.height_max),
        ]
    h = History
    return [
        f.count(),
        f.sum(h.processing_time),
        f.min(h.processing_time),
        f.max(h.processing_time),
        f.count(h.input_data_size),
        f.coalesce(f.sum(h.input_data_size), 0),
        f.min(h.input_data_size),
        f.max(h.input_data_size),
        f.count(h.image_width),
        f.coalesce(f.sum(h.image_width), 0),
        f.min(h.image_width),
        f.max(h.image_width),
        f.coalesce(f.sum(h.image_height), 0),
        f.min(h.image_height),
        f.max(h.image_height),
    ]


@dataclass(frozen=True)
class ModelFilter:
    """Restrict the statistics to one model and/or version (None: any)."""

    model: str | None = None
    version: str | None = None

    def matches(self, model: str, version: str) -> bool:
        return (self.model is None or model == self.model) and (
            self.version is None or version == self.version
        )


def _grouped(source: Any, where: list[Any]) -> list[tuple[tuple[int, str, str], Agg]]:
    keys: list[Any]
    if source is HistoryRollup:
        keys = [HistoryRollup.status_code, HistoryRollup.model_name, HistoryRollup.model_version]
    else:
        keys = [
            History.status_code,
            sa.func.coalesce(History.model_name, ""),
            sa.func.coalesce(History.model_version, ""),
        ]
    query = sa.select(*keys, *_agg_columns(source)).where(*where).group_by(*keys)
    out = []
    for row in db.session.execute(query):
        out.append(((int(row[0]), str(row[1]), str(row[2])), _to_agg(row[3:])))
    return out


def _to_agg(values: Any) -> Agg:
    """Plain Python numbers (PostgreSQL's SUM of a bigint is a Decimal); 0 for empty sums."""
    converted: dict[str, Any] = {}
    for field, value in zip(fields(Agg), values, strict=True):
        cast = float if field.name.startswith("time_") else int
        if value is None:
            converted[field.name] = None if field.name.endswith(("_min", "_max")) else cast(0)
        else:
            converted[field.name] = cast(value)
    return Agg(**converted)


def _range_filter(since: datetime | None, until: datetime | None) -> list[Any]:
    where = []
    if since is not None:
        where.append(History.created_at >= since)
    if until is not None:
        where.append(History.created_at < until)
    return where


def _collect(since: datetime | None, until: datetime | None) -> dict[tuple[int, str, str], Agg]:
    """Aggregates per (status, model, version) over [since, until), every model (so the caller also
    knows how many rows the time window holds, which picks the percentile index)."""
    parts: list[tuple[Any, list[Any]]] = []
    lo = hour_ceil(since) if since is not None else None
    hi = hour_floor(until) if until is not None else None
    if lo is not None and hi is not None and lo >= hi:
        parts.append((History, _range_filter(since, until)))  # within about one hour: raw rows only
    else:
        bucket_where = []
        if lo is not None:
            bucket_where.append(HistoryRollup.bucket >= lo)
        if hi is not None:
            bucket_where.append(HistoryRollup.bucket < hi)
        parts.append((HistoryRollup, bucket_where))
        if since is not None and lo is not None and since < lo:
            parts.append((History, _range_filter(since, lo)))
        if until is not None and hi is not None and hi < until:
            parts.append((History, _range_filter(hi, until)))
    groups: dict[tuple[int, str, str], Agg] = {}
    for source, where in parts:
        for key, agg in _grouped(source, where):
            groups.setdefault(key, Agg()).merge(agg)
    return groups


def _percentiles(
    count: int,
    all_rows: int,
    window_rows: int,
    since: datetime | None,
    until: datetime | None,
    models: ModelFilter,
) -> dict[str, float | None]:
    """Nearest-rank p50/p95/p99 of processing_time over [since, until), which holds ``count`` rows.

    Each is one ``ORDER BY processing_time LIMIT 1 OFFSET k``, walking an index from whichever end
    is nearer (p99 of a million rows is 10,000 steps, not 990,000). A wide window walks the
    processing_time index (covering: it carries created_at); a narrow one (under 1/16 of all rows)
    range-scans the created_at index (covering: it carries processing_time) and sorts what it found.
    SQLite's planner misjudges this with both bounds set, so SQLite is told which index to use.
    ``window_rows`` is the time window's row count over every model: narrowness is the window's.
    """
    if count == 0:
        return {name: None for name, _ in PERCENTILES}
    conditions: list[str] = []
    params: dict[str, Any] = {}
    if since is not None:
        conditions.append("created_at >= :since")
        params["since"] = since
    if until is not None:
        conditions.append("created_at < :until")
        params["until"] = until
    time_bounded = bool(conditions)
    if models.model is not None:
        conditions.append("model_name = :model")
        params["model"] = models.model
    if models.version is not None:
        conditions.append("model_version = :version")
        params["version"] = models.version
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    hint = ""
    if dialect_name() == "sqlite":
        narrow = time_bounded and window_rows * 16 < all_rows
        hint = "INDEXED BY ix_history_created_at" if narrow else "INDEXED BY ix_history_processing_time"
    out: dict[str, float | None] = {}
    for name, p in PERCENTILES:
        rank = min(max(math.ceil(p * count), 1), count)  # 1-based
        direction, offset = ("ASC", rank - 1) if rank <= count // 2 else ("DESC", count - rank)
        sql = (
            f"SELECT processing_time FROM history {hint} {where} "
            f"ORDER BY processing_time {direction} LIMIT 1 OFFSET :offset"
        )
        value = db.session.execute(sa.text(sql).bindparams(**params, offset=offset)).scalar()
        out[name] = None if value is None else float(value)
    return out


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
    all_groups = _collect(since, until)
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
    percentiles = _percentiles(total, all_rows, window_rows, since, until, models)
    return {
        "total_requests": total,
        "successful_requests": successful,
        "failed_requests": total - successful,
        "error_rate": round((total - successful) / total, 6) if total else 0.0,
        "processing_time_ms": {
            **_extremes(_mean(overall.time_sum, total), overall.time_min, overall.time_max),
            **percentiles,
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
