"""Paged listings, newest first: the query fields, the page's shape, and the query that fills it.

``GET /history`` and ``GET /audit`` page the same way: ``page`` (1-based) and ``per_page`` (at most 500)
in the query, ``{"items", "total", "page", "per_page"}`` back, rows ordered by ``created_at`` then ``id``,
both descending, so rows created in the same instant still come in a stable order.
"""

from __future__ import annotations

from typing import Any, cast

import sqlalchemy as sa
from apiflask import Schema
from apiflask.fields import Integer, List, Nested
from apiflask.validators import Range
from marshmallow.fields import Field

from .extensions import db
from .schema_fields import StrictSchema

MAX_PER_PAGE = 500


class PageQuery(StrictSchema):
    page = Integer(load_default=1, validate=Range(1, 10_000_000))
    per_page = Integer(load_default=50, validate=Range(1, MAX_PER_PAGE))


def page_of(item: type[Schema], name: str) -> type[Schema]:
    """The output schema of a page of ``item``s, named ``name`` in the OpenAPI document."""
    fields: dict[str, Field] = {
        "items": List(Nested(item)),
        "total": Integer(),
        "page": Integer(),
        "per_page": Integer(),
    }
    return cast(type[Schema], type(name, (Schema,), fields))


def created_between(table: Any, query: dict[str, Any]) -> list[Any]:
    """The conditions of ``query``'s since (inclusive) and until (exclusive) on ``table.created_at``."""
    where = []
    if query.get("since") is not None:
        where.append(table.created_at >= query["since"])
    if query.get("until") is not None:
        where.append(table.created_at < query["until"])
    return where


def newest_first(table: Any, where: list[Any], query: dict[str, Any]) -> dict[str, Any]:
    """One page of ``table``'s rows matching ``where``, for ``query``'s page and per_page."""
    page, per_page = query["page"], query["per_page"]
    total = db.session.scalar(sa.select(sa.func.count()).select_from(table).where(*where)) or 0
    rows = db.session.scalars(
        sa.select(table)
        .where(*where)
        .order_by(table.created_at.desc(), table.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    return {"items": rows, "total": total, "page": page, "per_page": per_page}
