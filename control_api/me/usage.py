"""A user's requests, images and errors per UTC day, counted in the database.

One grouped query over the user's rows in the window; the index on (user_id, created_at, status_code,
file_count) holds every column it reads, so a user with a million rows is summed from the index alone.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa

from ..extensions import db
from ..tables import History


def usage_query(user_id: int, since: date, until: date) -> sa.Select[Any]:
    """(day, requests, images, errors) for each UTC day from ``since`` to ``until`` with requests."""
    day = sa.func.date(History.created_at)  # 'YYYY-MM-DD' on SQLite, a date on PostgreSQL
    return (
        sa.select(
            day,
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(History.file_count), 0),
            sa.func.coalesce(sa.func.sum(sa.case((History.status_code >= 400, 1), else_=0)), 0),
        )
        .where(
            History.user_id == user_id,
            History.created_at >= datetime.combine(since, time()),
            History.created_at < datetime.combine(until + timedelta(days=1), time()),
        )
        .group_by(day)
    )


def daily_usage(user_id: int, since: date, until: date) -> dict[str, Any]:
    """``UsageOut`` for the UTC days ``since`` to ``until``, both included; days without requests are 0."""
    query = usage_query(user_id, since, until)
    counted = {str(row[0])[:10]: (int(row[1]), int(row[2]), int(row[3])) for row in db.session.execute(query)}
    days = []
    total = {"requests": 0, "images": 0, "errors": 0}
    for offset in range((until - since).days + 1):
        name = (since + timedelta(days=offset)).isoformat()
        requests, images, errors = counted.get(name, (0, 0, 0))
        days.append({"day": name, "requests": requests, "images": images, "errors": errors})
        total["requests"] += requests
        total["images"] += images
        total["errors"] += errors
    return {"since": since, "until": until, "days": days, "total": total}
