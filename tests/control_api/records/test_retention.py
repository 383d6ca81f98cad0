"""purge-history: old rows go in batches, the statistics keep their aggregates."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from control_api.extensions import db
from control_api.records.retention import retention_cutoff
from control_api.tables import History, utcnow
from tests.control_api.conftest import AuthActions
from tests.control_api.records.history_rows import assert_stats_match, brute_stats, make_rows


def _old_rows(app) -> list[dict]:
    """40 rows 40 days ago (two of them a day apart), on top of the recent ``seeded`` rows."""
    return make_rows(app, 40, utcnow() - timedelta(days=41), timedelta(days=1), seed=11)


def _count(app) -> int:
    with app.app_context():
        return int(db.session.scalar(sa.select(sa.func.count()).select_from(History)) or 0)


def test_purge_deletes_old_rows_in_batches_and_keeps_the_rest(app, runner, seeded) -> None:
    old = _old_rows(app)

    result = runner.invoke(args=["purge-history", "--days", "30", "--batch-size", "7"])

    assert result.exit_code == 0, result.output
    assert f"Purged {len(old)} history rows" in result.output
    assert _count(app) == len(seeded)


def test_stats_keep_the_purged_aggregates(app, client, runner, auth: AuthActions, seeded) -> None:
    old = _old_rows(app)
    admin = auth.admin_headers()
    before = client.get("/stats?status=all", headers=admin).get_json()
    series_before = client.get("/stats/timeseries?bucket=1d", headers=admin).get_json()

    runner.invoke(args=["purge-history", "--days", "30"])

    after = client.get("/stats?status=all", headers=admin).get_json()
    assert after["total_requests"] == before["total_requests"] == len(seeded) + len(old)
    assert after["status_codes"] == before["status_codes"] and after["users"] == before["users"]
    assert after["classes"] == before["classes"]
    assert client.get("/stats/timeseries?bucket=1d", headers=admin).get_json() == series_before
    # The percentiles can only cover the rows kept, and say so.
    assert after["percentiles_since"] is not None
    kept = brute_stats(seeded, None, None, status="all")["processing_time_ms"]
    for name in ("p50", "p95", "p99"):
        assert after["processing_time_ms"][name] == kept[name], name


def test_stats_of_a_window_after_the_cutoff_are_exact(app, client, runner, auth: AuthActions, seeded) -> None:
    _old_rows(app)
    runner.invoke(args=["purge-history", "--days", "30"])
    since = utcnow() - timedelta(hours=3, minutes=11)

    body = client.get(f"/stats?since={since.isoformat()}Z", headers=auth.admin_headers()).get_json()

    assert body["percentiles_since"] is None
    assert_stats_match(body, brute_stats(seeded, since, None))


def test_retention_off_purges_nothing(app, runner, seeded) -> None:
    _old_rows(app)
    app.config["HISTORY_RETENTION_DAYS"] = 0

    result = runner.invoke(args=["purge-history"])

    assert result.exit_code == 0 and "nothing purged" in result.output
    assert _count(app) == len(seeded) + 40


def test_retention_days_from_the_settings(app, runner, seeded) -> None:
    _old_rows(app)
    app.config["HISTORY_RETENTION_DAYS"] = 7

    runner.invoke(args=["purge-history"])

    assert _count(app) == len(seeded)


def test_cutoff_is_the_start_of_an_hour() -> None:
    now = utcnow().replace(minute=37, second=5)

    assert retention_cutoff(2, now) == (now - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
