"""Writing and deleting history rows, keeping the hourly rollup in step in the same transaction."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.elements import ColumnElement

from ..extensions import db
from ..tables import History, HistoryRollup
from . import rollup_writes

HOUR = timedelta(hours=1)
# On the table, not the ORM class: skips the ORM bulk-insert layer (a third of the insert's CPU).
_HISTORY_INSERT = sa.insert(History.__table__)


def hour_floor(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def hour_ceil(moment: datetime) -> datetime:
    floor = hour_floor(moment)
    return floor if floor == moment else floor + HOUR


def dialect_name() -> str:
    return db.session.get_bind().dialect.name


def _least(current: Any, new: Any) -> ColumnElement[Any]:
    """min() that ignores NULL on both sides, the same on SQLite and PostgreSQL."""
    return sa.case((current.is_(None), new), (new.is_(None), current), (new < current, new), else_=current)


def _greatest(current: Any, new: Any) -> ColumnElement[Any]:
    return sa.case((current.is_(None), new), (new.is_(None), current), (new > current, new), else_=current)


def _rollup_values(row: Mapping[str, Any]) -> dict[str, Any]:
    size, width, height = row.get("input_data_size"), row.get("image_width"), row.get("image_height")
    has_dims = width is not None and height is not None
    time_ms = row["processing_time"]
    return {
        "bucket": hour_floor(row["created_at"]),
        "status_code": row["status_code"],
        "model_name": row.get("model_name") or "",
        "model_version": row.get("model_version") or "",
        "request_count": 1,
        "time_sum": time_ms,
        "time_min": time_ms,
        "time_max": time_ms,
        "size_count": int(size is not None),
        "size_sum": size or 0,
        "size_min": size,
        "size_max": size,
        "dims_count": int(has_dims),
        "width_sum": width if has_dims else 0,
        "width_min": width if has_dims else None,
        "width_max": width if has_dims else None,
        "height_sum": height if has_dims else 0,
        "height_min": height if has_dims else None,
        "height_max": height if has_dims else None,
    }


@lru_cache(maxsize=4)
def _rollup_upsert(dialect: str) -> Any:
    """INSERT ... ON CONFLICT (bucket, status, model, version) DO UPDATE: add counts and sums, widen
    the extremes. Built once per dialect; the row's values are bound at execution."""
    table = HistoryRollup.__table__
    insert = sqlite_insert if dialect == "sqlite" else pg_insert
    stmt = insert(table)
    new, cur = stmt.excluded, table.c
    updates: dict[str, Any] = {}
    for name in (
        "request_count",
        "time_sum",
        "size_count",
        "size_sum",
        "dims_count",
        "width_sum",
        "height_sum",
    ):
        updates[name] = cur[name] + new[name]
    for name in ("time_min", "size_min", "width_min", "height_min"):
        updates[name] = _least(cur[name], new[name])
    for name in ("time_max", "size_max", "width_max", "height_max"):
        updates[name] = _greatest(cur[name], new[name])
    return stmt.on_conflict_do_update(
        index_elements=[cur.bucket, cur.status_code, cur.model_name, cur.model_version], set_=updates
    )


def record(row: Mapping[str, Any]) -> None:
    """Insert the history row (column name -> value; ``created_at`` required) and fold it into its hour's
    rollup; committed when this returns. A Core insert: no ORM object or unit of work on the hot path."""
    session = db.session
    try:
        session.execute(_HISTORY_INSERT, row)
        session.execute(_rollup_upsert(dialect_name()), _rollup_values(row))
        rollup_writes.fold(row)
        session.commit()
    except Exception:
        session.rollback()
        raise


def _hour_expr() -> Any:
    if dialect_name() == "sqlite":
        # The text format SQLAlchemy stores DateTime in on SQLite, truncated to the hour.
        return sa.func.strftime("%Y-%m-%d %H:00:00.000000", History.created_at)
    return sa.func.date_trunc("hour", History.created_at)


def rebuild_rollups(start: datetime | None = None, end: datetime | None = None) -> None:
    """Recompute the rollups of [start, end) (hour-aligned) from the history rows, in the caller's
    transaction: after bulk loads, and in migrations. ``rollup_writes``' buckets overlapping it too."""
    _rebuild_hourly(start, end)
    rollup_writes.rebuild(start, end)


def _rebuild_hourly(start: datetime | None, end: datetime | None) -> None:
    """Recompute the hourly ``history_rollup`` buckets in [start, end) (hour-aligned) from the rows."""
    bucket_filter = []
    row_filter = []
    if start is not None:
        bucket_filter.append(HistoryRollup.bucket >= start)
        row_filter.append(History.created_at >= start)
    if end is not None:
        bucket_filter.append(HistoryRollup.bucket < end)
        row_filter.append(History.created_at < end)
    db.session.execute(sa.delete(HistoryRollup).where(*bucket_filter))
    h = History
    select = (
        sa.select(
            _hour_expr(),
            h.status_code,
            sa.func.coalesce(h.model_name, ""),
            sa.func.coalesce(h.model_version, ""),
            sa.func.count(),
            sa.func.sum(h.processing_time),
            sa.func.min(h.processing_time),
            sa.func.max(h.processing_time),
            sa.func.count(h.input_data_size),
            sa.func.coalesce(sa.func.sum(h.input_data_size), 0),
            sa.func.min(h.input_data_size),
            sa.func.max(h.input_data_size),
            sa.func.count(h.image_width),
            sa.func.coalesce(sa.func.sum(h.image_width), 0),
            sa.func.min(h.image_width),
            sa.func.max(h.image_width),
            sa.func.coalesce(sa.func.sum(h.image_height), 0),
            sa.func.min(h.image_height),
            sa.func.max(h.image_height),
        )
        .where(*row_filter)
        .group_by(
            sa.literal_column("1"), sa.literal_column("2"), sa.literal_column("3"), sa.literal_column("4")
        )
    )
    columns = [
        "bucket",
        "status_code",
        "model_name",
        "model_version",
        "request_count",
        "time_sum",
        "time_min",
        "time_max",
        "size_count",
        "size_sum",
        "size_min",
        "size_max",
        "dims_count",
        "width_sum",
        "width_min",
        "width_max",
        "height_sum",
        "height_min",
        "height_max",
    ]
    db.session.execute(sa.insert(HistoryRollup).from_select(columns, select))


def _rowcount(result: Any) -> int:
    return int(result.rowcount or 0)


def delete_history(before: datetime | None) -> int:
    """Delete the rows older than ``before`` (all rows when None) and fix the rollup; returns the count."""
    session = db.session
    try:
        if dialect_name() == "postgresql":
            # Hold off concurrent upserts while the boundary bucket is recomputed.
            session.execute(sa.text("LOCK TABLE history_rollup IN SHARE ROW EXCLUSIVE MODE"))
        if before is None:
            deleted = _rowcount(session.execute(sa.delete(History)))
            session.execute(sa.delete(HistoryRollup))
            rollup_writes.forget_before(None)
        else:
            deleted = _rowcount(session.execute(sa.delete(History).where(History.created_at < before)))
            boundary = hour_floor(before)
            session.execute(sa.delete(HistoryRollup).where(HistoryRollup.bucket < boundary))
            if boundary != before:
                _rebuild_hourly(boundary, boundary + HOUR)
            rollup_writes.forget_before(before)
        session.commit()
    except Exception:
        session.rollback()
        raise
    return deleted
