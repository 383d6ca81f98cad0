"""Writing and deleting history rows keeps the hourly rollup exact."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from control_api.extensions import db
from control_api.records.rollup_tables import HistoryClasses, HistoryLatency, HistorySeries, HistoryUsers
from control_api.records.stats import compute_stats
from control_api.records.writes import delete_history, rebuild_rollups
from control_api.tables import HistoryRollup, utcnow
from tests.control_api.records.history_rows import assert_stats_match, brute_stats

ROLLUPS = (HistoryRollup, HistorySeries, HistoryLatency, HistoryClasses, HistoryUsers)


def _snapshot(table: Any) -> list[tuple[Any, ...]]:
    columns = [c for c in table.__table__.c if c.name != "id"]
    rows = db.session.execute(sa.select(*columns)).all()
    return sorted(tuple(round(v, 6) if isinstance(v, float) else v for v in row) for row in rows)


def test_rollup_kept_incrementally_equals_a_rebuild(app, seeded) -> None:
    with app.app_context():
        incremental = [_snapshot(table) for table in ROLLUPS]
        rebuild_rollups()
        db.session.commit()
        assert [_snapshot(table) for table in ROLLUPS] == incremental


def test_delete_before_keeps_every_rollup_equal_to_a_rebuild(app, seeded) -> None:
    cut = utcnow() - timedelta(hours=2, minutes=23, seconds=17)  # mid-minute
    with app.app_context():
        delete_history(cut)
        kept = [_snapshot(table) for table in ROLLUPS]
        rebuild_rollups()
        db.session.commit()
        assert [_snapshot(table) for table in ROLLUPS] == kept


def test_delete_before_keeps_stats_exact(app, seeded) -> None:
    cut = utcnow() - timedelta(hours=2, minutes=23)  # mid-hour: that bucket is recomputed
    with app.app_context():
        deleted = delete_history(cut)
        assert deleted == sum(1 for r in seeded if r["created_at"] < cut)
        remaining = [r for r in seeded if r["created_at"] >= cut]
        assert_stats_match(compute_stats(), brute_stats(remaining, None, None))
        since = utcnow() - timedelta(hours=3)
        assert_stats_match(compute_stats(since, None), brute_stats(remaining, since, None))
