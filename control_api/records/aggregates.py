"""Counts, sums and extremes of the history, per (status, model, version), from as few rows as possible.

The hourly rollup (``history_rollup``) holds them per hour; only the partial hours at the edges of a
since/until range are read from the raw rows. A handful of grouped queries, never a scan of all history.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..extensions import db
from ..tables import History, HistoryRollup
from .writes import hour_ceil, hour_floor

Key = tuple[int, str, str]  # (status, model, version)


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


def _grouped(source: Any, where: list[Any]) -> list[tuple[Key, Agg]]:
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


def collect(since: datetime | None, until: datetime | None) -> dict[Key, Agg]:
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
    groups: dict[Key, Agg] = {}
    for source, where in parts:
        for key, agg in _grouped(source, where):
            groups.setdefault(key, Agg()).merge(agg)
    return groups
