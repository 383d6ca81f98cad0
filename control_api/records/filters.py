"""The history filters shared by ``GET /history`` (every row) and ``GET /me/history`` (the caller's own):
since (inclusive), until (exclusive) and exact matches."""

from __future__ import annotations

from typing import Any

from ..pagination import created_between
from ..tables import History

# Query field -> the column it filters on, for exact matches.
EXACT_FILTERS = {
    "status_code": History.status_code,
    "username": History.username,
    "model": History.model_name,
    "version": History.model_version,
    "request_id": History.request_id,
}


def history_filters(query: dict[str, Any]) -> list[Any]:
    """The conditions on ``history`` of the filters ``query`` holds."""
    where = created_between(History, query)
    for name, column in EXACT_FILTERS.items():
        if query.get(name) is not None:
            where.append(column == query[name])
    return where
