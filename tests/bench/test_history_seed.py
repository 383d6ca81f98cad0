"""bench.history_seed: the seeded rows, their hourly rollup and what GET /stats answers over them agree.

Each backend gets a fresh database with the migrations' schema (``bench.stats_seed``, as the bench uses it),
seeded once for the module; the tests only read. The expected values are computed here in Python from the
raw rows, independently of the rollup and of control_api's statistics code.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from apiflask import APIFlask

from bench import stats_seed
from bench.history_seed import seed_history
from control_api.extensions import db
from control_api.tables import History, HistoryRollup, utcnow

ROWS = 2000
DAYS = 30.0
# The documented mix, by row number n = 1..ROWS.
OUTCOMES = ((10, 1, 415), (20, 2, 422), (40, 3, 401), (80, 4, 503))


def status_of(n: int) -> int:
    return next((status for mod, rest, status in OUTCOMES if n % mod == rest), 200)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def seeded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[APIFlask]:
    """An app on a fresh database holding ROWS seeded rows (SQLite, or PostgreSQL on TEST_DATABASE_URL)."""
    pg_url = os.environ.get("TEST_DATABASE_URL")
    if request.param == "postgresql" and not pg_url:
        pytest.skip("TEST_DATABASE_URL is not set")
    work = tmp_path_factory.mktemp(f"seed_{request.param}")
    with stats_seed.fresh_database(request.param, work, pg_url or stats_seed.PG_URL) as url:
        app = stats_seed.make_app(url, work / "instance")
        stats_seed.create_schema(app)
        with app.app_context():
            seed_history(ROWS, DAYS)
        try:
            yield app
        finally:
            with app.app_context():
                db.session.remove()
                db.engine.dispose()  # so the database can be dropped


@pytest.fixture(scope="module")
def admin(seeded: APIFlask) -> dict[str, str]:
    """Authorization header of an admin of the seeded app (GET /stats is admin-only)."""
    return stats_seed.admin_headers(seeded)


def history_rows(app: APIFlask, since: datetime | None = None, until: datetime | None = None) -> list[Any]:
    where = []
    if since is not None:
        where.append(History.created_at >= since)
    if until is not None:
        where.append(History.created_at < until)
    h = History
    query = sa.select(
        h.created_at, h.status_code, h.processing_time, h.model_name, h.model_version, h.user_id
    )
    with app.app_context():
        return list(db.session.execute(query.where(*where)).all())


def nearest_rank(ordered: list[float], p: float) -> float:
    return ordered[min(max(math.ceil(p * len(ordered)), 1), len(ordered)) - 1]


def expected_stats(rows: list[Any]) -> dict[str, Any]:
    """The parts of the /stats document that follow directly from the raw rows (latency: successes)."""
    times = sorted(row.processing_time for row in rows if row.status_code < 400)
    statuses = Counter(str(row.status_code) for row in rows)
    by_version = Counter(row.model_version for row in rows if row.model_name)
    return {
        "total_requests": len(rows),
        "failed_requests": sum(n for code, n in statuses.items() if int(code) >= 400),
        "status_codes": dict(statuses),
        "by_version": dict(by_version),
        "min": times[0],
        "max": times[-1],
        "mean": sum(times) / len(times),
        "p50": nearest_rank(times, 0.50),
        "p95": nearest_rank(times, 0.95),
        "p99": nearest_rank(times, 0.99),
    }


def get_stats(app: APIFlask, headers: dict[str, str], query: str = "") -> dict[str, Any]:
    response = app.test_client().get(f"/stats{query}", headers=headers)
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def assert_stats_match(stats: dict[str, Any], expected: dict[str, Any]) -> None:
    time_ms = stats["processing_time_ms"]
    assert stats["total_requests"] == expected["total_requests"]
    assert stats["failed_requests"] == expected["failed_requests"]
    assert stats["status_codes"] == expected["status_codes"]
    versions = {version: v["total_requests"] for version, v in stats["by_model"]["resnet50"].items()}
    assert versions == expected["by_version"]
    assert (time_ms["min"], time_ms["max"]) == (expected["min"], expected["max"])
    assert time_ms["mean"] == pytest.approx(expected["mean"], abs=2e-3)  # /stats rounds to 3 decimals
    assert [time_ms[p] for p in ("p50", "p95", "p99")] == [expected[p] for p in ("p50", "p95", "p99")]


def test_rows_follow_the_documented_mix_over_the_last_days(seeded: APIFlask) -> None:
    rows = history_rows(seeded)
    now = utcnow()

    statuses = Counter(row.status_code for row in rows)
    anonymous = [row for row in rows if row.status_code == 401]

    assert len(rows) == ROWS
    assert statuses == Counter(status_of(n) for n in range(1, ROWS + 1))
    assert all(row.user_id is None and row.model_name is None for row in anonymous)
    assert all(now - timedelta(days=DAYS) < row.created_at <= now for row in rows)
    assert {row.model_version for row in rows if row.status_code != 401} == {"1.0", "2.0"}


def test_rollup_holds_the_rows_hour_by_hour(seeded: APIFlask) -> None:
    expected: Counter[tuple[datetime, int, str, str]] = Counter()
    for row in history_rows(seeded):
        hour = row.created_at.replace(minute=0, second=0, microsecond=0)
        expected[(hour, row.status_code, row.model_name or "", row.model_version or "")] += 1
    r = HistoryRollup
    query = sa.select(r.bucket, r.status_code, r.model_name, r.model_version, r.request_count)

    with seeded.app_context():
        rollup = {tuple(row[:4]): row[4] for row in db.session.execute(query)}

    assert rollup == dict(expected)


def test_stats_over_all_rows_agree_with_the_rows(seeded: APIFlask, admin: dict[str, str]) -> None:
    expected = expected_stats(history_rows(seeded))

    stats = get_stats(seeded, admin)

    assert_stats_match(stats, expected)


def test_stats_over_an_unaligned_window_agree_with_the_rows(seeded: APIFlask, admin: dict[str, str]) -> None:
    """Hour-unaligned edges: raw rows at both ends, the rollup in between."""
    now = utcnow().replace(microsecond=0)
    since, until = now - timedelta(days=7, minutes=17), now - timedelta(minutes=23)
    expected = expected_stats(history_rows(seeded, since, until))

    stats = get_stats(seeded, admin, f"?since={since.isoformat()}Z&until={until.isoformat()}Z")

    assert 0 < expected["total_requests"] < ROWS
    assert_stats_match(stats, expected)


def test_bench_stats_step_reports_every_seeded_row(tmp_path: Path) -> None:
    summary = stats_seed.run("sqlite", 300, tmp_path)

    assert summary["rows"] == summary["total_requests"] == 300
    assert summary["calls"] == stats_seed.TIMED_CALLS
    assert 0 < summary["min_ms"] <= summary["median_ms"] <= summary["max_ms"]
    assert summary["window_7d"]["total_requests"] < 300
