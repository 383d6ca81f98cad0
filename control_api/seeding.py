"""Bulk synthetic history, for measuring /stats at scale: one INSERT ... SELECT, generated in the database."""

from __future__ import annotations

import time
from datetime import timedelta

import sqlalchemy as sa

from .extensions import db
from .models import utcnow
from .recording import dialect_name, rebuild_rollups

_COLUMNS = (
    "created_at, request_id, request_type, user_id, username, model_name, model_version, file_count, "
    "processing_time, upstream_time, input_data_size, image_width, image_height, status_code, result, "
    "error_message"
)

# n: 1..rows; status: 90% 200, then 415, 422, 401, 503. 401s have no user, model or sizes (as in real use).
_SQLITE = f"""
WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < :rows),
base AS (
  SELECT n, CASE WHEN n % 10 = 1 THEN 415 WHEN n % 20 = 2 THEN 422 WHEN n % 40 = 3 THEN 401
                 WHEN n % 80 = 4 THEN 503 ELSE 200 END AS status
  FROM seq
)
INSERT INTO history ({_COLUMNS})
SELECT
  strftime('%Y-%m-%d %H:%M:%f', :start, '+' || (n * :step) || ' seconds') || '000',
  lower(hex(randomblob(16))), 'forward',
  CASE WHEN status = 401 THEN NULL ELSE 1 + n % 50 END,
  CASE WHEN status = 401 THEN '' ELSE 'user' || (n % 50) END,
  CASE WHEN status = 401 THEN NULL ELSE 'resnet50' END,
  CASE WHEN status = 401 THEN NULL WHEN n % 3 = 0 THEN '2.0' ELSE '1.0' END,
  CASE WHEN status = 401 THEN 0 ELSE 1 END,
  20.0 + abs(random() % 200000) / 1000.0,
  CASE WHEN status = 401 THEN NULL ELSE 15.0 + abs(random() % 150000) / 1000.0 END,
  CASE WHEN status = 401 THEN NULL ELSE 20000 + abs(random() % 2000000) END,
  CASE WHEN status = 200 THEN 64 + abs(random() % 4000) END,
  CASE WHEN status = 200 THEN 64 + abs(random() % 3000) END,
  status,
  CASE WHEN status = 200 THEN '{{"class_id": 281, "label": "tabby", "probability": 0.42}}' END,
  CASE WHEN status <> 200 THEN 'synthetic error' END
FROM base
"""

_POSTGRES = f"""
WITH base AS (
  SELECT n, CASE WHEN n % 10 = 1 THEN 415 WHEN n % 20 = 2 THEN 422 WHEN n % 40 = 3 THEN 401
                 WHEN n % 80 = 4 THEN 503 ELSE 200 END AS status
  FROM generate_series(1, :rows) AS n
)
INSERT INTO history ({_COLUMNS})
SELECT
  CAST(:start AS timestamp) + n * CAST(:step AS double precision) * interval '1 second',
  md5(random()::text), 'forward',
  CASE WHEN status = 401 THEN NULL ELSE 1 + n % 50 END,
  CASE WHEN status = 401 THEN '' ELSE 'user' || (n % 50) END,
  CASE WHEN status = 401 THEN NULL ELSE 'resnet50' END,
  CASE WHEN status = 401 THEN NULL WHEN n % 3 = 0 THEN '2.0' ELSE '1.0' END,
  CASE WHEN status = 401 THEN 0 ELSE 1 END,
  20.0 + random() * 200.0,
  CASE WHEN status = 401 THEN NULL ELSE 15.0 + random() * 150.0 END,
  CASE WHEN status = 401 THEN NULL ELSE 20000 + floor(random() * 2000000)::bigint END,
  CASE WHEN status = 200 THEN 64 + floor(random() * 4000)::int END,
  CASE WHEN status = 200 THEN 64 + floor(random() * 3000)::int END,
  status,
  CASE WHEN status = 200 THEN CAST('{{"class_id": 281, "label": "tabby", "probability": 0.42}}' AS json) END,
  CASE WHEN status <> 200 THEN 'synthetic error' END
FROM base
"""


def seed_history(rows: int, days: float = 30.0) -> float:
    """Append ``rows`` synthetic rows spread evenly over the last ``days`` days; returns the seconds taken.

    The rollup is rebuilt afterwards, so /stats sees them.
    """
    start = utcnow() - timedelta(days=days)
    step = days * 86400.0 / max(rows, 1)
    sql = _SQLITE if dialect_name() == "sqlite" else _POSTGRES
    began = time.perf_counter()
    db.session.execute(sa.text(sql), {"rows": rows, "start": start.isoformat(sep=" "), "step": step})
    rebuild_rollups()
    db.session.commit()
    if dialect_name() == "postgresql":
        # Fresh statistics and visibility map, as autovacuum would give a long-lived table.
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE history"))
            conn.execute(sa.text("VACUUM ANALYZE history_rollup"))
    else:
        db.session.execute(sa.text("ANALYZE"))
        db.session.commit()
    return time.perf_counter() - began
