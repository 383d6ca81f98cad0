"""The class distribution and the usage per user of /stats, from the rollups (classes per hour, users per
day and hour) plus the raw rows of the partial hours at the edges of a since/until range."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..extensions import db
from ..tables import History
from .percentiles import ModelFilter
from .ranges import Range, split
from .rollup_tables import HistoryClasses, HistoryUsers
from .rollup_writes import top1_labels

TOP_CLASSES = 20
TOP_USERS = 50


def _where(time: Any, name: Any, version: Any, edge: Range, models: ModelFilter) -> list[Any]:
    """``time`` in [edge[0], edge[1]) and the model filter, over whichever columns hold them."""
    where = []
    if edge[0] is not None:
        where.append(time >= edge[0])
    if edge[1] is not None:
        where.append(time < edge[1])
    if models.model is not None:
        where.append(name == models.model)
    if models.version is not None:
        where.append(version == models.version)
    return where


def _bucket_where(table: Any, hours: Range, models: ModelFilter) -> list[Any]:
    return _where(table.bucket, table.model_name, table.model_version, hours, models)


def _row_where(edge: Range, models: ModelFilter) -> list[Any]:
    return _where(History.created_at, History.model_name, History.model_version, edge, models)


def class_distribution(since: datetime | None, until: datetime | None, models: ModelFilter) -> dict[str, Any]:
    """Top-1 classes of the classified images: the 20 most frequent and the count of all the others."""
    counts: Counter[str] = Counter()
    pieces = split(since, until, days=False)
    for hours in pieces.hours:
        c = HistoryClasses
        query = (
            sa.select(c.label, sa.func.sum(c.count)).where(*_bucket_where(c, hours, models)).group_by(c.label)
        )
        for label, n in db.session.execute(query):
            counts[label] += int(n)
    for edge in pieces.rows:
        results = sa.select(History.result).where(
            *_row_where(edge, models), History.status_code < 400, History.result.is_not(None)
        )
        for result in db.session.scalars(results):
            counts.update(top1_labels(result))
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    top = [{"label": label, "count": n} for label, n in ranked[:TOP_CLASSES]]
    return {"top": top, "other": sum(n for _, n in ranked[TOP_CLASSES:]), "total": sum(counts.values())}


def user_usage(since: datetime | None, until: datetime | None, models: ModelFilter) -> dict[str, Any]:
    """Requests, errors and images per user (the 50 busiest; '' is unauthenticated), and all the others."""
    usage: dict[str, list[int]] = {}
    pieces = split(since, until)
    parts: list[Any] = []
    u = HistoryUsers
    spans = [("1d", pieces.days)] if pieces.days is not None else []
    for span, bounds in [*spans, *(("1h", hours) for hours in pieces.hours)]:
        parts.append(
            sa.select(u.username, sa.func.sum(u.requests), sa.func.sum(u.errors), sa.func.sum(u.images))
            .where(u.span == span, *_bucket_where(u, bounds, models))
            .group_by(u.username)
        )
    for edge in pieces.rows:
        h = History
        parts.append(
            sa.select(
                h.username,
                sa.func.count(),
                sa.func.sum(sa.case((h.status_code >= 400, 1), else_=0)),
                sa.func.coalesce(sa.func.sum(h.file_count), 0),
            )
            .where(*_row_where(edge, models))
            .group_by(h.username)
        )
    for query in parts:
        for name, requests, errors, images in db.session.execute(query):
            entry = usage.setdefault(name, [0, 0, 0])
            entry[0] += int(requests or 0)
            entry[1] += int(errors or 0)
            entry[2] += int(images or 0)
    ranked = sorted(usage.items(), key=lambda item: (-item[1][0], item[0]))
    users = [{"username": n, "requests": r, "errors": e, "images": i} for n, (r, e, i) in ranked[:TOP_USERS]]
    rest = [v for _, v in ranked[TOP_USERS:]]
    other = {
        "users": len(rest),
        **{k: sum(v[j] for v in rest) for j, k in enumerate(("requests", "errors", "images"))},
    }
    return {"top": users, "other": other}
