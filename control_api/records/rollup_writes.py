"""Folding each history row into the rollups of ``rollup_tables``, and rebuilding them from the rows.

``fold`` runs inside ``writes.record``'s transaction: the rollups never disagree with the rows written.
``rebuild`` recomputes a time range from the rows (after a deletion, after a bulk load, in the migration).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..extensions import db
from ..tables import History
from .rollup_tables import HistoryClasses, HistoryLatency, HistorySeries, HistoryUsers

SPANS = {"1m": timedelta(minutes=1), "1h": timedelta(hours=1), "1d": timedelta(days=1)}
BINS_PER_LN = 20  # histogram bins per natural-log unit: each bin spans a factor of e**(1/20), about 5 %
_MIN_MS = 0.001


def floor_to(moment: datetime, span: str) -> datetime:
    if span == "1m":
        return moment.replace(second=0, microsecond=0)
    if span == "1h":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def ceil_to(moment: datetime, span: str) -> datetime:
    floor = floor_to(moment, span)
    return floor if floor == moment else floor + SPANS[span]


def latency_bin(ms: float) -> int:
    """The histogram bin of a latency: floor(ln(ms) * 20), the same in SQL (``bin_expr``)."""
    return math.floor(math.log(max(ms, _MIN_MS)) * BINS_PER_LN)


def bin_value(index: int) -> float:
    """A bin's representative latency: its geometric middle, within 2.5 % of every value in it."""
    return round(math.exp((index + 0.5) / BINS_PER_LN), 3)


def top1_labels(result: Any) -> list[str]:
    """The top-1 labels a stored result holds: one for a single image, one per classified image of a batch."""
    items = result if isinstance(result, list) else [result]
    return [str(item["label"])[:128] for item in items if isinstance(item, dict) and item.get("label")]


def _dialect() -> str:
    return db.session.get_bind().dialect.name


@lru_cache(maxsize=16)
def _upsert(dialect: str, table: sa.Table, keys: tuple[str, ...], sums: tuple[str, ...]) -> Any:
    stmt = (sqlite_insert if dialect == "sqlite" else pg_insert)(table)
    return stmt.on_conflict_do_update(
        index_elements=[table.c[k] for k in keys], set_={c: table.c[c] + stmt.excluded[c] for c in sums}
    )


_SERIES_KEYS = ("span", "bucket", "model_name", "model_version")
_SERIES_SUMS = ("requests", "errors", "images")
_LATENCY_KEYS = (*_SERIES_KEYS, "bin")
_CLASS_KEYS = ("bucket", "model_name", "model_version", "label")
_USER_KEYS = ("span", "bucket", "username", "model_name", "model_version")
USER_SPANS = ("1h", "1d")


def fold(row: Mapping[str, Any]) -> None:
    """Add one history row (``writes.record``'s mapping) to every rollup, in the caller's transaction."""
    session, dialect = db.session, _dialect()
    model = {"model_name": row.get("model_name") or "", "model_version": row.get("model_version") or ""}
    ok = row["status_code"] < 400
    counts = {"requests": 1, "errors": int(not ok), "images": int(row.get("file_count") or 0)}
    created = row["created_at"]
    series = [{"span": s, "bucket": floor_to(created, s), **model, **counts} for s in SPANS]
    session.execute(_upsert(dialect, HistorySeries.__table__, _SERIES_KEYS, _SERIES_SUMS), series)
    hour = floor_to(created, "1h")
    name = row.get("username") or ""
    users = [
        {"span": s, "bucket": floor_to(created, s), "username": name, **model, **counts} for s in USER_SPANS
    ]
    session.execute(_upsert(dialect, HistoryUsers.__table__, _USER_KEYS, _SERIES_SUMS), users)
    if not ok:
        return
    latency_index = latency_bin(float(row["processing_time"]))
    latency = [{**s, "bin": latency_index, "count": 1} for s in series]
    for entry in latency:
        for name in _SERIES_SUMS:
            entry.pop(name)
    session.execute(_upsert(dialect, HistoryLatency.__table__, _LATENCY_KEYS, ("count",)), latency)
    labels = Counter(top1_labels(row.get("result")))
    if labels:
        classes = [{"bucket": hour, **model, "label": k, "count": n} for k, n in labels.items()]
        session.execute(_upsert(dialect, HistoryClasses.__table__, _CLASS_KEYS, ("count",)), classes)


# --- rebuilding from the rows -------------------------------------------------------------------------


def _bucket_expr(span: str) -> Any:
    if _dialect() == "sqlite":
        # The text format SQLAlchemy stores DateTime in on SQLite, truncated to the span.
        fmt = {
            "1m": "%Y-%m-%d %H:%M:00.000000",
            "1h": "%Y-%m-%d %H:00:00.000000",
            "1d": "%Y-%m-%d 00:00:00.000000",
        }
        return sa.func.strftime(fmt[span], History.created_at)
    return sa.func.date_trunc({"1m": "minute", "1h": "hour", "1d": "day"}[span], History.created_at)


def bin_expr() -> Any:
    clamp = sa.func.max if _dialect() == "sqlite" else sa.func.greatest
    value = sa.func.floor(sa.func.ln(clamp(History.processing_time, _MIN_MS)) * BINS_PER_LN)
    return sa.cast(value, sa.Integer)


def _rows_in(start: datetime | None, end: datetime | None) -> list[Any]:
    where = []
    if start is not None:
        where.append(History.created_at >= start)
    if end is not None:
        where.append(History.created_at < end)
    return where


def _clear(table: Any, start: datetime | None, end: datetime | None, *where: Any) -> None:
    conditions = list(where)
    if start is not None:
        conditions.append(table.bucket >= start)
    if end is not None:
        conditions.append(table.bucket < end)
    db.session.execute(sa.delete(table).where(*conditions))


def _model_columns() -> list[Any]:
    return [sa.func.coalesce(History.model_name, ""), sa.func.coalesce(History.model_version, "")]


def _count_columns() -> list[Any]:
    h = History
    return [
        sa.func.count(),
        sa.func.coalesce(sa.func.sum(sa.case((h.status_code >= 400, 1), else_=0)), 0),
        sa.func.coalesce(sa.func.sum(h.file_count), 0),
    ]


def _group(n: int) -> list[Any]:
    return [sa.literal_column(str(i)) for i in range(1, n + 1)]


def _rebuild_span(span: str, start: datetime | None, end: datetime | None) -> None:
    lo = floor_to(start, span) if start is not None else None
    hi = ceil_to(end, span) if end is not None else None
    where = _rows_in(lo, hi)
    bucket = _bucket_expr(span)
    _clear(HistorySeries, lo, hi, HistorySeries.span == span)
    series = (
        sa.select(sa.literal(span), bucket, *_model_columns(), *_count_columns())
        .where(*where)
        .group_by(*_group(4))
    )
    db.session.execute(sa.insert(HistorySeries).from_select([*_SERIES_KEYS, *_SERIES_SUMS], series))
    _clear(HistoryLatency, lo, hi, HistoryLatency.span == span)
    latency = (
        sa.select(sa.literal(span), bucket, *_model_columns(), bin_expr(), sa.func.count())
        .where(*where, History.status_code < 400)
        .group_by(*_group(5))
    )
    db.session.execute(sa.insert(HistoryLatency).from_select([*_LATENCY_KEYS, "count"], latency))
    if span not in USER_SPANS:
        return
    _clear(HistoryUsers, lo, hi, HistoryUsers.span == span)
    users = (
        sa.select(sa.literal(span), bucket, History.username, *_model_columns(), *_count_columns())
        .where(*where)
        .group_by(*_group(5))
    )
    db.session.execute(sa.insert(HistoryUsers).from_select([*_USER_KEYS, *_SERIES_SUMS], users))
    if span != "1h":
        return
    _clear(HistoryClasses, lo, hi)
    _rebuild_classes(where)


def _rebuild_classes(where: list[Any]) -> None:
    """Class counts from the stored results (JSON, a dict or a list of them: read in Python, streamed)."""
    h = History
    query = (
        sa.select(h.created_at, h.model_name, h.model_version, h.result)
        .where(*where, h.status_code < 400, h.result.is_not(None))
        .execution_options(yield_per=5000)
    )
    counts: Counter[tuple[datetime, str, str, str]] = Counter()
    for created, model, version, result in db.session.execute(query):
        for label in top1_labels(result):
            counts[(floor_to(created, "1h"), model or "", version or "", label)] += 1
    rows = [
        {"bucket": b, "model_name": m, "model_version": v, "label": label, "count": n}
        for (b, m, v, label), n in counts.items()
    ]
    if rows:
        db.session.execute(sa.insert(HistoryClasses), rows)


def rebuild(start: datetime | None = None, end: datetime | None = None) -> None:
    """Recompute every rollup bucket that overlaps [start, end) from the rows, in the caller's transaction."""
    for span in SPANS:
        _rebuild_span(span, start, end)


def forget_before(before: datetime | None) -> None:
    """After the rows older than ``before`` (all rows when None) were deleted: drop their buckets and
    recompute the partial ones at the boundary."""
    tables = (HistorySeries, HistoryLatency, HistoryUsers, HistoryClasses)
    if before is None:
        for table in tables:
            db.session.execute(sa.delete(table))
        return
    for span in SPANS:
        boundary = floor_to(before, span)
        for table in tables:
            if table in (HistorySeries, HistoryLatency) or (table is HistoryUsers and span in USER_SPANS):
                _clear(table, None, boundary, table.span == span)
            elif table is HistoryClasses and span == "1h":
                _clear(table, None, boundary)
        _rebuild_span(span, before, before)
