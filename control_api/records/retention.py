"""History retention: ``flask --app control_api purge-history`` deletes the rows older than
HISTORY_RETENTION_DAYS (or ``--days``), a batch at a time.

Each batch is its own short transaction (the oldest ``--batch-size`` rows by id), so /forward's writers
wait at most one batch. The cutoff is rounded down to the hour, and the rollups are left as they are: the
purged rows' counts, sums, histograms, classes and users stay in /stats and /stats/timeseries (``stats``
says how the percentiles treat the purged part of a range). Compose runs it on a schedule (the
``history-purge`` service).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import click
import sqlalchemy as sa
from flask import current_app
from flask.cli import with_appcontext

from ..extensions import db
from ..tables import History, utcnow
from .writes import hour_floor

DEFAULT_BATCH = 5000


def purge_before(cutoff: datetime, batch: int = DEFAULT_BATCH) -> int:
    """Delete every row created before ``cutoff``, ``batch`` rows per transaction; returns the count."""
    deleted = 0
    while True:
        ids = sa.select(History.id).where(History.created_at < cutoff).order_by(History.id).limit(batch)
        try:
            result = db.session.execute(sa.delete(History).where(History.id.in_(ids.scalar_subquery())))
            db.session.commit()
        except Exception:
            db.session.rollback()
            raise
        count = int(result.rowcount or 0)  # type: ignore[attr-defined]
        deleted += count
        if count < batch:
            return deleted


def retention_cutoff(days: int, now: datetime | None = None) -> datetime:
    """The start of the hour ``days`` days before ``now``: rows before it are purged."""
    return hour_floor((now or utcnow()) - timedelta(days=days))


@click.command("purge-history")
@click.option(
    "--days", type=click.IntRange(min=1), help="keep this many days (default HISTORY_RETENTION_DAYS)"
)
@click.option(
    "--batch-size", type=click.IntRange(min=1, max=100_000), default=DEFAULT_BATCH, show_default=True
)
@with_appcontext
def purge_history_command(days: int | None, batch_size: int) -> None:
    """Delete history rows older than the retention period; the statistics keep their aggregates."""
    days = days or int(current_app.config["HISTORY_RETENTION_DAYS"])
    if days <= 0:
        click.echo("HISTORY_RETENTION_DAYS is 0 (keep everything) and no --days given: nothing purged.")
        return
    cutoff = retention_cutoff(days)
    deleted = purge_before(cutoff, batch_size)
    click.echo(f"Purged {deleted} history rows created before {cutoff.isoformat()}Z.")
