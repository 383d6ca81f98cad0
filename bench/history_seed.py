"""Bulk synthetic history for measuring /stats at scale, written straight into the control API's tables.

One ``INSERT ... SELECT`` generates every row inside the database (a million rows take seconds, where the
API's per-request path would take hours), then the hourly rollup is rebuilt from them with the API's own
``rebuild_rollups`` (so /stats reads exactly what it would after real traffic), and the planner statistics
are refreshed, as autovacuum would for a long-lived table.

The rows are spread evenly over the last ``days`` days and look like /forward traffic: 50 users, two
versions of resnet50, realistic sizes and timings, and a fixed mix of outcomes by row number: 415 for one
row in 10, 422 for one in 20, 401 for one in 40 (no user, model or sizes, as with a rejected token), 503 for
one in 80, 200 for the rest (81.25 %).

Call ``seed_history`` inside an app context, on a scratch database.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa

from control_api.extensions import db
from control_api.records.writes import dialect_name, rebuild_rollups
from control_api.tables import History, HistoryRollup, utcnow

SUCCESS_RESULT = '{"class_id": 281, "label": "tabby", "probability": 0.42}'


@dataclass(frozen=True)
class _Dialect:
    """The SQL that differs between SQLite and PostgreSQL."""

    numbers: str  # a CTE named numbers(n) that counts 1..:rows
    created_at: str  # row n's timestamp: :start plus n * :step seconds
    request_id: str  # 32 random hex digits
    random_below: str  # a random integer in [0, {k})
    result: str  # SUCCESS_RESULT as a value of the JSON column


_SQLITE = _Dialect(
    numbers="RECURSIVE numbers(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM numbers WHERE n < :rows)",
    # The text format SQLAlchemy stores DateTime in on SQLite (%f gives milliseconds: pad to microseconds).
    created_at="strftime('%Y-%m-%d %H:%M:%f', :start, '+' || (n * :step) || ' seconds') || '000'",
    request_id="lower(hex(randomblob(16)))",
    random_below="abs(random() % {k})",
    result=f"'{SUCCESS_RESULT}'",
)
_POSTGRES = _Dialect(
    numbers="numbers(n) AS (SELECT generate_series(1, :rows))",
    created_at="CAST(:start AS timestamp) + n * CAST(:step AS double precision) * interval '1 second'",
    request_id="md5(random()::text)",
    random_below="floor(random() * {k})::bigint",
    result=f"CAST('{SUCCESS_RESULT}' AS json)",
)


def insert_sql(dialect: _Dialect) -> str:
    """The one statement that adds :rows rows (parameters :rows, :start, :step)."""

    def rand(k: int) -> str:
        return dialect.random_below.format(k=k)

    return f"""
WITH {dialect.numbers},
base AS (
  SELECT n, CASE WHEN n % 10 = 1 THEN 415 WHEN n % 20 = 2 THEN 422 WHEN n % 40 = 3 THEN 401
                 WHEN n % 80 = 4 THEN 503 ELSE 200 END AS status
  FROM numbers
)
INSERT INTO history (
  created_at, request_id, request_type, user_id, username, model_name, model_version, file_count,
  processing_time, upstream_time, input_data_size, image_width, image_height, status_code, result,
  error_message
)
SELECT
  {dialect.created_at}, {dialect.request_id}, 'forward',
  CASE WHEN status = 401 THEN NULL ELSE 1 + n % 50 END,
  CASE WHEN status = 401 THEN '' ELSE 'user' || (n % 50) END,
  CASE WHEN status = 401 THEN NULL ELSE 'resnet50' END,
  CASE WHEN status = 401 THEN NULL WHEN n % 3 = 0 THEN '2.0' ELSE '1.0' END,
  CASE WHEN status = 401 THEN 0 ELSE 1 END,
  20.0 + {rand(200_000)} / 1000.0,
  CASE WHEN status = 401 THEN NULL ELSE 15.0 + {rand(150_000)} / 1000.0 END,
  CASE WHEN status = 401 THEN NULL ELSE 20000 + {rand(2_000_000)} END,
  CASE WHEN status = 200 THEN 64 + {rand(4000)} END,
  CASE WHEN status = 200 THEN 64 + {rand(3000)} END,
  status,
  CASE WHEN status = 200 THEN {dialect.result} END,
  CASE WHEN status <> 200 THEN 'synthetic error' END
FROM base
"""


def seed_history(rows: int, days: float = 30.0) -> float:
    """Append ``rows`` synthetic rows spread evenly over the last ``days`` days (the newest one now),
    rebuild the rollup, refresh the planner statistics; returns the seconds all that took."""
    start = utcnow() - timedelta(days=days)
    step = days * 86400.0 / max(rows, 1)
    dialect = _SQLITE if dialect_name() == "sqlite" else _POSTGRES
    began = time.perf_counter()
    db.session.execute(
        sa.text(insert_sql(dialect)), {"rows": rows, "start": start.isoformat(sep=" "), "step": step}
    )
    rebuild_rollups()
    db.session.commit()
    refresh_statistics()
    return time.perf_counter() - began


def refresh_statistics() -> None:
    """Planner statistics (and on PostgreSQL the visibility map) for the history tables."""
    tables = (
        History.__tablename__,
        HistoryRollup.__tablename__,
        "history_series",
        "history_latency",
        "history_classes",
        "history_users",
    )
    if dialect_name() == "postgresql":
        # VACUUM cannot run inside a transaction.
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in tables:
                conn.execute(sa.text(f"VACUUM ANALYZE {table}"))
    else:
        for table in tables:
            db.session.execute(sa.text(f"ANALYZE {table}"))
        db.session.commit()
