"""GET /stats at scale: seed N history rows into a fresh database, then time /stats.

The schema comes from the control API's own migrations (``flask db upgrade``; the models' ``create_all``
only where there are no migrations yet). The rows come from ``bench.history_seed`` (one INSERT ... SELECT
generated in the database, 30 days of traffic, the hourly rollup rebuilt, planner statistics refreshed).
``GET /stats`` is then timed through the real Flask app (its test client: routing, admin JWT check, the
queries, JSON) - the median of several calls after one warm-up call - for all time and for a 7-day window
with unaligned edges (raw-row edges plus the rollup in between); then ``GET /stats/timeseries`` with its
default ranges: 60 one-minute, 48 one-hour and 30 one-day buckets.

PostgreSQL gets a fresh database ``bench_<random>`` on ``--pg-url``'s server that is dropped afterwards.

Run alone: ``python -m bench.stats_seed sqlite|postgresql --rows 1000000``.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TIMED_CALLS = 7


def make_app(db_url: str, instance: Path) -> Any:
    """The real control API app on ``db_url``, with throwaway secrets."""
    from control_api import create_app

    return create_app(
        {
            "SQLALCHEMY_DATABASE_URI": db_url,
            "SECRET_KEY": secrets.token_urlsafe(48),
            "ADMIN_TOKEN": secrets.token_urlsafe(32),
            "RATELIMIT_ENABLED": False,
            "BCRYPT_ROUNDS": 10,  # the least create_app accepts outside tests
            "INSTANCE_PATH": str(instance),
        }
    )


def create_schema(app: Any) -> None:
    """The migrations' schema (falls back to the models' create_all only where there are no migrations)."""
    from control_api.extensions import MIGRATIONS_DIR, db

    with app.app_context():
        if (MIGRATIONS_DIR / "versions").is_dir():
            from flask_migrate import upgrade

            upgrade(directory=str(MIGRATIONS_DIR))
        else:
            db.create_all()


def seed(app: Any, rows: int) -> float:
    """``rows`` synthetic history rows (``bench.history_seed``); returns the seconds it took."""
    from bench.history_seed import seed_history

    with app.app_context():
        return float(seed_history(rows))


def admin_headers(app: Any) -> dict[str, str]:
    """A JWT for a fresh admin user (/stats is admin-only)."""
    from control_api.auth.tokens import issue_token
    from control_api.extensions import db
    from control_api.tables import User

    with app.app_context():
        admin = User(username="bench_admin", is_admin=True)
        admin.set_password(secrets.token_urlsafe(16))
        db.session.add(admin)
        db.session.commit()
        token = issue_token(admin)
    return {"Authorization": f"Bearer {token}"}


def time_stats(
    app: Any, headers: dict[str, str], query: str, calls: int = TIMED_CALLS, path: str = "/stats"
) -> dict[str, Any]:
    """Median/min/max ms of GET {path}{query} through the app, after one warm-up call."""
    client = app.test_client()
    first = client.get(f"{path}{query}", headers=headers)
    if first.status_code != 200:
        raise RuntimeError(
            f"GET {path}{query}: HTTP {first.status_code}: {first.get_data(as_text=True)[:500]}"
        )
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        resp = client.get(f"{path}{query}", headers=headers)
        times.append((time.perf_counter() - t0) * 1000.0)
        resp.close()
    body = first.get_json()
    return {
        "median_ms": statistics.median(times),
        "min_ms": min(times),
        "max_ms": max(times),
        "calls": calls,
        "total_requests": body.get("total_requests") if isinstance(body, dict) else None,
    }


def _window_query() -> str:
    now = datetime.now(UTC).replace(tzinfo=None)
    since = (now - timedelta(days=7, minutes=17)).isoformat(timespec="seconds")
    until = (now - timedelta(minutes=23)).isoformat(timespec="seconds")
    return f"?since={since}Z&until={until}Z"


@contextmanager
def fresh_database(backend: str, work: Path, pg_url: str = PG_URL) -> Iterator[str]:
    """A SQLAlchemy URL to an empty database; PostgreSQL's is created here and dropped afterwards."""
    if backend == "sqlite":
        work.mkdir(parents=True, exist_ok=True)
        path = work / f"stats_{secrets.token_hex(4)}.db"
        try:
            yield f"sqlite:///{path}"
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    from launcher.databases import scratch_postgres_database

    with scratch_postgres_database(pg_url, prefix="bench") as url:
        yield url


def run(backend: str, rows: int, work: Path, pg_url: str = PG_URL) -> dict[str, Any]:
    """Seed ``rows`` into a fresh ``backend`` database and time /stats; returns the summary."""
    with fresh_database(backend, work, pg_url) as url:
        app = make_app(url, work)
        create_schema(app)
        seed_s = seed(app, rows)
        headers = admin_headers(app)
        all_time = time_stats(app, headers, "")
        window = time_stats(app, headers, _window_query())
        series = {
            f"timeseries_{bucket}": time_stats(app, headers, f"?bucket={bucket}", path="/stats/timeseries")
            for bucket in ("1m", "1h", "1d")
        }
        with app.app_context():
            from control_api.extensions import db

            db.engine.dispose()  # so the database can be dropped
    if all_time["total_requests"] not in (None, rows):
        raise RuntimeError(f"/stats counted {all_time['total_requests']} rows, seeded {rows}")
    return {"rows": rows, "seed_s": seed_s, **all_time, "window_7d": window, **series}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("backend", choices=["sqlite", "postgresql"])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--pg-url", default=PG_URL, help="server to create the throwaway database on")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_stats_") as tmp:
        json.dump(run(args.backend, args.rows, Path(tmp), args.pg_url), sys.stdout, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
