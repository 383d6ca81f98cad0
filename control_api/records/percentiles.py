"""Latency percentiles of the history: nearest-rank, read off an index.

The p-th percentile of n values is the value at rank ceil(p * n). Each is read with ``LIMIT 1 OFFSET k``
on an index, on both backends: PostgreSQL's ``percentile_cont``/``percentile_disc`` would sort every
row in range, the index walk reads only the rows up to the rank.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..extensions import db
from .percentile_bins import success_histogram, value_in_bin
from .writes import dialect_name

PERCENTILES = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))
# status=ok|error|all: which requests the percentiles are over (successes: status below 400).
STATUS_CONDITIONS = {"ok": "status_code < 400", "error": "status_code >= 400", "all": None}


def status_matches(status: str, code: int) -> bool:
    return status == "all" or (code < 400) == (status == "ok")


@dataclass(frozen=True)
class ModelFilter:
    """Restrict the statistics to one model and/or version (None: any)."""

    model: str | None = None
    version: str | None = None

    def matches(self, model: str, version: str) -> bool:
        return (self.model is None or model == self.model) and (
            self.version is None or version == self.version
        )


def percentiles(
    count: int,
    all_rows: int,
    window_rows: int,
    since: datetime | None,
    until: datetime | None,
    models: ModelFilter,
    status: str = "all",
) -> dict[str, float | None]:
    """Nearest-rank p50/p95/p99 of processing_time over [since, until), which holds ``count`` rows.

    Each is one ``ORDER BY processing_time LIMIT 1 OFFSET k``, walking an index from whichever end
    is nearer (p99 of a million rows is 10,000 steps, not 990,000). A wide window walks the
    processing_time index (covering: it carries created_at); a narrow one (under 1/16 of all rows)
    range-scans the created_at index (covering: it carries processing_time) and sorts what it found.
    SQLite's planner misjudges this with both bounds set, so SQLite is told which index to use.
    The successful requests of a wide window go through the latency histogram instead
    (``percentile_bins``): each walk then stays inside one bin.
    ``window_rows`` is the time window's row count over every model: narrowness is the window's.
    ``status`` (ok, error, all) keeps only those requests; ``count`` is how many of them there are.
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
    if STATUS_CONDITIONS[status]:
        conditions.append(str(STATUS_CONDITIONS[status]))
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    narrow = time_bounded and window_rows * 16 < all_rows
    hint = ""
    if dialect_name() == "sqlite":
        hint = "INDEXED BY ix_history_created_at" if narrow else "INDEXED BY ix_history_processing_time"
    if status == "ok" and not narrow:
        found = _through_bins(count, since, until, models, " AND ".join(conditions), params, hint)
        if found is not None:
            return found
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


def _through_bins(
    count: int,
    since: datetime | None,
    until: datetime | None,
    models: ModelFilter,
    where: str,
    params: dict[str, Any],
    hint: str,
) -> dict[str, float | None] | None:
    """The same percentiles of the successful requests, each read inside the histogram bin that holds
    it; None when the histogram does not add up to ``count`` (the caller then walks the whole index)."""
    bins = success_histogram(since, until, models.model, models.version)
    if sum(n for _, n in bins) != count:
        return None
    out: dict[str, float | None] = {}
    for name, p in PERCENTILES:
        rank, below, value = min(max(math.ceil(p * count), 1), count), 0, None
        for index, n in bins:
            if below + n >= rank:
                value = value_in_bin(index, rank - below - 1, n, where, params, hint)
                break
            below += n
        if value is None:
            return None
        out[name] = value
    return out
