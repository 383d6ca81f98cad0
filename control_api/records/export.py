"""``GET /history`` as CSV: every matching row, newest first, streamed from a server-side cursor.

The rows are read ``yield_per`` at a time and written out as they come, so memory stays flat whatever the
row count. The matching rows are counted first: more than ``HISTORY_EXPORT_MAX_ROWS`` is refused (422
``export_too_large``) before anything is streamed, so a client never gets a truncated file that looks whole.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from flask import Response, current_app, request, stream_with_context

from ..errors import APIError
from ..extensions import db
from ..tables import History

COLUMNS = (
    "id",
    "created_at",
    "request_id",
    "request_type",
    "username",
    "model_name",
    "model_version",
    "file_count",
    "processing_time",
    "upstream_time",
    "input_data_size",
    "image_width",
    "image_height",
    "status_code",
    "result",
    "error_message",
)
BATCH = 2000


def wants_csv(query: dict[str, Any]) -> bool:
    """``format=csv``, or an Accept header preferring text/csv to JSON (without ``format=json``)."""
    if query.get("format"):
        return bool(query["format"] == "csv")
    best = request.accept_mimetypes.best_match(["application/json", "text/csv"], default="application/json")
    return best == "text/csv"


def _cell(name: str, value: Any) -> Any:
    if value is None:
        return ""
    if name == "created_at":
        return value.isoformat(timespec="microseconds") + "Z"
    if name == "result":
        return json.dumps(value, separators=(",", ":"))
    return value


def _lines(where: list[Any]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    columns = [History.__table__.c[name] for name in COLUMNS]
    query = (
        sa.select(*columns)
        .where(*where)
        .order_by(History.created_at.desc(), History.id.desc())
        .execution_options(yield_per=BATCH)
    )
    for partition in db.session.execute(query).partitions():
        for row in partition:
            writer.writerow([_cell(name, value) for name, value in zip(COLUMNS, row, strict=True)])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def csv_response(where: list[Any]) -> Response:
    """The streamed CSV of the rows matching ``where``, or 422 when there are more than the cap."""
    cap = int(current_app.config["HISTORY_EXPORT_MAX_ROWS"])
    # Count at most cap + 1 rows: enough to know, without counting a huge table to the end.
    capped = sa.select(History.id).where(*where).limit(cap + 1).subquery()
    matching = int(db.session.scalar(sa.select(sa.func.count()).select_from(capped)) or 0)
    if matching > cap:
        raise APIError(
            422,
            "export_too_large",
            f"More than {cap} rows match; narrow since/until or the filters (HISTORY_EXPORT_MAX_ROWS).",
        )
    return Response(
        stream_with_context(_lines(where)),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="history.csv"', "X-Total-Count": str(matching)},
    )
