"""GET /me/usage: requests, images and errors per UTC day, against a count by hand; the window's limits;
the query served by the (user_id, created_at, ...) index."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

import pytest
import sqlalchemy as sa

from control_api.extensions import db
from control_api.me.usage import usage_query
from control_api.tables import utcnow
from tests.control_api.conftest import AuthActions, assert_error
from tests.control_api.me.rows import account, add_rows


def usage(client, headers, query: str = "") -> dict:
    response = client.get(f"/me/usage{query}", headers=headers)
    assert response.status_code == 200, response.get_json()
    return dict(response.get_json())


def test_usage_counts_each_utc_day(app, client, auth: AuthActions) -> None:
    headers = auth.headers("alice")
    auth.token("bob")
    alice, bob = account(app, "alice"), account(app, "bob")
    rng = random.Random(3)
    first = date(2026, 3, 1)
    expected: dict[str, list[int]] = {}
    for _ in range(120):
        moment = datetime(2026, 3, 1) + timedelta(seconds=rng.uniform(0, 10 * 86400))
        status, files = rng.choice([(200, 1), (200, 4), (415, 2), (401, 0)])
        add_rows(app, alice, [moment], status=status, files=files)
        counts = expected.setdefault(moment.date().isoformat(), [0, 0, 0])
        counts[0] += 1
        counts[1] += files
        counts[2] += status >= 400
    add_rows(app, bob, [datetime(2026, 3, 2, 12)] * 5)  # someone else's: not counted
    add_rows(app, alice, [datetime(2026, 2, 28, 23, 59, 59, 999999), datetime(2026, 3, 11)])  # outside

    body = usage(client, headers, "?since=2026-03-01&until=2026-03-10")
    assert (body["since"], body["until"]) == ("2026-03-01", "2026-03-10")
    days = [(first + timedelta(days=n)).isoformat() for n in range(10)]
    assert [d["day"] for d in body["days"]] == days
    assert [[d["requests"], d["images"], d["errors"]] for d in body["days"]] == [
        expected.get(day, [0, 0, 0]) for day in days
    ]
    assert body["total"] == {
        "requests": 120,
        "images": sum(c[1] for c in expected.values()),
        "errors": sum(c[2] for c in expected.values()),
    }
    # One day; its first and last instants both count.
    add_rows(app, alice, [datetime(2026, 3, 20), datetime(2026, 3, 20, 23, 59, 59, 999999)])
    assert usage(client, headers, "?since=2026-03-20&until=2026-03-20")["total"]["requests"] == 2


def test_usage_defaults_to_the_last_30_days(app, client, auth: AuthActions) -> None:
    headers = auth.headers("alice")
    now = utcnow()
    add_rows(app, account(app, "alice"), [now, now - timedelta(days=29), now - timedelta(days=31)])
    body = usage(client, headers)
    today = now.date()
    assert (body["since"], body["until"]) == ((today - timedelta(days=29)).isoformat(), today.isoformat())
    assert len(body["days"]) == 30 and body["total"]["requests"] == 2
    assert usage(client, headers, f"?until={today - timedelta(days=30)}")["total"]["requests"] == 1
    assert len(usage(client, headers, f"?since={today - timedelta(days=2)}")["days"]) == 3


@pytest.mark.parametrize(
    "query",
    [
        "?since=2026-03-02&until=2026-03-01",  # reversed
        "?since=2025-01-01&until=2026-01-02",  # 367 days
        "?since=2000-01-01",  # up to today: far more than 366 days
        "?since=yesterday",
        "?since=2026-02-30",
        "?until=9999-12-31",  # its next day does not exist
        "?since=0001-01-01&until=0001-01-02",
        "?days=7",
    ],
)
def test_usage_window_limits(client, auth: AuthActions, query: str) -> None:
    assert_error(client.get(f"/me/usage{query}", headers=auth.headers("alice")), 422, "validation_error")


def test_usage_takes_366_days(client, auth: AuthActions) -> None:
    assert len(usage(client, auth.headers("alice"), "?since=2024-01-01&until=2024-12-31")["days"]) == 366


def test_usage_is_read_from_the_user_index(app) -> None:
    """The plan: the (user_id, created_at, status_code, file_count) index, with no table access on SQLite
    (a covering index); on PostgreSQL with sequential scans off (a tiny table would be scanned anyway)."""
    with app.app_context():
        query = usage_query(7, date(2026, 3, 1), date(2026, 3, 31))
        dialect = db.session.get_bind().dialect
        sql = str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        if dialect.name == "sqlite":
            plan = " ".join(str(row[-1]) for row in db.session.execute(sa.text(f"EXPLAIN QUERY PLAN {sql}")))
            assert "USING COVERING INDEX ix_history_user_id_created_at" in plan, plan
        else:
            # Rows of 50 users over the month, planner statistics fresh: the user's index is the cheaper
            # one by far (on an empty table every index costs the same and the planner may take any).
            db.session.execute(
                sa.text(
                    "INSERT INTO history (created_at, request_type, user_id, username, file_count, "
                    "processing_time, status_code) "
                    "SELECT timestamp '2026-03-01' + n * interval '20 minutes', 'forward', n % 50, "
                    "'u' || (n % 50), 1, 10.0, 200 FROM generate_series(1, 2000) AS n"
                )
            )
            db.session.execute(sa.text("ANALYZE history"))
            db.session.execute(sa.text("SET LOCAL enable_seqscan = off"))
            plan = " ".join(str(row[0]) for row in db.session.execute(sa.text(f"EXPLAIN {sql}")))
            assert "ix_history_user_id_created_at" in plan, plan
        db.session.rollback()
