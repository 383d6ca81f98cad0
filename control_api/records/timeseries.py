"""``GET /stats/timeseries``: requests, errors, images and latency percentiles per minute, hour or day.

Read from the ``history_series`` and ``history_latency`` rollups of that span only (never the rows), so
the cost follows the number of buckets, not of requests; the range is widened to whole buckets and holds
at most ``MAX_POINTS`` of them. Percentiles are over the successful requests, from the latency histogram:
nearest-rank, reported as the middle of the bin they fall in (within 2.5 % of the exact value).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..errors import APIError
from ..extensions import db
from ..tables import utcnow
from .percentiles import PERCENTILES, ModelFilter
from .rollup_tables import HistoryLatency, HistorySeries
from .rollup_writes import SPANS, bin_value, ceil_to, floor_to

MAX_POINTS = 1500
DEFAULT_POINTS = {"1m": 60, "1h": 48, "1d": 30}


def window(bucket: str, since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    """[since, until) widened to whole buckets; the last DEFAULT_POINTS buckets when not given."""
    step = SPANS[bucket]
    hi = ceil_to(until, bucket) if until is not None else floor_to(utcnow(), bucket) + step
    lo = floor_to(since, bucket) if since is not None else hi - DEFAULT_POINTS[bucket] * step
    if (hi - lo) / step > MAX_POINTS:
        raise APIError(
            422,
            "range_too_large",
            f"The range holds more than {MAX_POINTS} buckets of {bucket}: narrow it or use a larger bucket.",
        )
    return lo, hi


def _where(table: Any, bucket: str, lo: datetime, hi: datetime, models: ModelFilter) -> list[Any]:
    where = [table.span == bucket, table.bucket >= lo, table.bucket < hi]
    if models.model is not None:
        where.append(table.model_name == models.model)
    if models.version is not None:
        where.append(table.model_version == models.version)
    return where


def histogram_percentiles(bins: list[tuple[int, int]]) -> dict[str, float | None]:
    """Nearest-rank percentiles of a histogram given as (bin, count) in ascending bin order."""
    total = sum(n for _, n in bins)
    out: dict[str, float | None] = {}
    for name, p in PERCENTILES:
        if total == 0:
            out[name] = None
            continue
        rank, seen = min(max(math.ceil(p * total), 1), total), 0
        for index, n in bins:
            seen += n
            if seen >= rank:
                out[name] = bin_value(index)
                break
    return out


def timeseries(
    bucket: str, since: datetime | None, until: datetime | None, model: str | None, version: str | None
) -> dict[str, Any]:
    """The /stats/timeseries document (``TimeseriesOut``)."""
    lo, hi = window(bucket, since, until)
    models = ModelFilter(model, version)
    s = HistorySeries
    series = sa.select(s.bucket, s.model_name, s.model_version, s.requests, s.errors, s.images).where(
        *_where(s, bucket, lo, hi, models)
    )
    points: dict[datetime, dict[str, Any]] = {}
    step, moment = SPANS[bucket], lo
    while moment < hi:
        points[moment] = {"start": moment, "requests": 0, "errors": 0, "images": 0, "by_model": {}}
        moment += step
    for start, model_name, model_version, requests, errors, images in db.session.execute(series):
        point = points.get(start)
        if point is None:
            continue
        point["requests"] += int(requests)
        point["errors"] += int(errors)
        point["images"] += int(images)
        if model_name:
            split = point["by_model"].setdefault(model_name, {})
            split[model_version or "unknown"] = {
                "requests": int(requests),
                "errors": int(errors),
                "images": int(images),
            }
    latency = HistoryLatency
    bins = (
        sa.select(latency.bucket, latency.bin, sa.func.sum(latency.count))
        .where(*_where(latency, bucket, lo, hi, models))
        .group_by(latency.bucket, latency.bin)
        .order_by(latency.bucket, latency.bin)
    )
    per_bucket: dict[datetime, list[tuple[int, int]]] = {}
    for start, index, n in db.session.execute(bins):
        per_bucket.setdefault(start, []).append((int(index), int(n)))
    for start, point in points.items():
        point.update(histogram_percentiles(per_bucket.get(start, [])))
    return {"bucket": bucket, "since": lo, "until": hi, "points": list(points.values())}
