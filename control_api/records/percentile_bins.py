"""Exact percentiles of the successful requests, found quickly through the latency histogram.

The histogram (``history_latency``, by day and hour, plus the raw rows of the partial hours at the edges)
says which bin the p-th value falls in and how many values lie below that bin; the value itself is then
read from the rows with ``ORDER BY processing_time LIMIT 1 OFFSET k`` inside that bin only (a bin spans
5 % of latency values), instead of walking the index from one end to the rank.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..extensions import db
from ..tables import History
from .ranges import split
from .rollup_tables import HistoryLatency
from .rollup_writes import BINS_PER_LN, bin_expr, latency_bin

LOWEST_BIN = latency_bin(0.0)


def success_histogram(
    since: datetime | None, until: datetime | None, model: str | None, version: str | None
) -> list[tuple[int, int]]:
    """(bin, count) of the successful requests in [since, until), in ascending bin order."""
    counts: Counter[int] = Counter()
    pieces = split(since, until)
    h, lat = History, HistoryLatency
    spans = [("1d", pieces.days)] if pieces.days is not None else []
    queries: list[Any] = []
    for span, (lo, hi) in [*spans, *(("1h", hours) for hours in pieces.hours)]:
        where = [lat.span == span]
        where += [lat.bucket >= lo] if lo is not None else []
        where += [lat.bucket < hi] if hi is not None else []
        where += [lat.model_name == model] if model is not None else []
        where += [lat.model_version == version] if version is not None else []
        queries.append(sa.select(lat.bin, sa.func.sum(lat.count)).where(*where).group_by(lat.bin))
    for lo, hi in pieces.rows:
        where = [h.status_code < 400]
        where += [h.created_at >= lo] if lo is not None else []
        where += [h.created_at < hi] if hi is not None else []
        where += [h.model_name == model] if model is not None else []
        where += [h.model_version == version] if version is not None else []
        index = bin_expr()
        queries.append(sa.select(index, sa.func.count()).where(*where).group_by(index))
    for query in queries:
        for index, n in db.session.execute(query):
            counts[int(index)] += int(n)
    return sorted((index, n) for index, n in counts.items() if n)


def value_in_bin(
    index: int, offset: int, size: int, where: str, params: dict[str, Any], hint: str
) -> float | None:
    """The value at 0-based ``offset`` among the ``size`` matching rows of bin ``index``."""
    bounds = ["processing_time < :bin_hi"]
    if index > LOWEST_BIN:
        bounds.append("processing_time >= :bin_lo")
    conditions = " AND ".join([*bounds, where] if where else bounds)
    direction, k = ("ASC", offset) if offset <= size // 2 else ("DESC", size - 1 - offset)
    sql = (
        f"SELECT processing_time FROM history {hint} WHERE {conditions} "
        f"ORDER BY processing_time {direction} LIMIT 1 OFFSET :offset"
    )
    bind = {
        **params,
        "bin_lo": math.exp(index / BINS_PER_LN),
        "bin_hi": math.exp((index + 1) / BINS_PER_LN),
        "offset": k,
    }
    value = db.session.execute(sa.text(sql).bindparams(**bind)).scalar()
    return None if value is None else float(value)
