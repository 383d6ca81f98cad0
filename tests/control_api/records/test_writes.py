"""Writing and deleting history rows keeps the hourly rollup exact."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from control_api.extensions import db
from control_api.records.stats import compute_stats
from control_api.records.writes import delete_history, rebuild_rollups
from control_api.tables import HistoryRollup, utcnow
from tests.control_api.records.history_rows import assert_stats_match, brute_stats


def test_rollup_kept_incrementally_equals_a_rebuild(app, seeded) -> None:
    def snapshot() -> list[tuple[Any, ...]]:
        columns = [c for c in HistoryRollup.__table__.c if c.name != "id"]
        rows = db.session.execute(sa.select(*columns)).all()
        return sorted(tuple(round(v, 6) if isinstance(v, float) else v for v in row) for row in rows)

    with app.app_context():
        incremental = snapshot()
        rebuild_rollups()
        db.session.commit()
        assert snapshot() == incremental


def test_delete_before_keeps_stats_exact(app, seeded) -> None:
    cut = utcnow() - timedelta(hours=2, minutes=23)  # mid-hour: that bucket is recomputed
    with app.app_context():
        deleted = delete_history(cut)
        assert deleted == sum(1 for r in seeded if r["created_at"] < cut)
        remaining = [r for r in seeded if r["created_at"] >= cut]
        assert_stats_match(compute_stats(), brute_stats(remaining, None, None))
        since = utcnow() - timedelta(hours=3)
        assert_stats_match(compute_stats(since, None), brute_stats(remaining, since, None))
