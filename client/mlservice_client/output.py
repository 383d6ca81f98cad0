"""``mlsvc classify``'s output: one line per input as a table, JSON lines or CSV, and ``--resume``.

Every line is final: a classification, or the error of a file the API refused (or that could not be
read). Errors that stop a run (no valid token, the service down) are not written, so a resumed run tries
those files again. ``done_sources`` reads back which inputs an earlier run's file already has.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, TextIO

from .errors import ApiError
from .results import ItemResult

FORMATS = ("table", "jsonl", "csv")
CSV_FIELDS = (
    "source", "ok", "label", "class_id", "probability", "model", "version", "request_id", "error",
    "status", "message",
)  # fmt: skip


def record(item: ItemResult) -> dict[str, Any]:
    """The JSON-lines record of one input."""
    if item.classification is not None:
        c = item.classification
        return {
            "source": item.source,
            "ok": True,
            "model": c.model,
            "version": c.version,
            "request_id": c.request_id,
            "predictions": [vars(p) for p in c.predictions],
            "image": {"width": c.width, "height": c.height, "format": c.format},
        }
    error = item.error
    assert error is not None
    return {
        "source": item.source,
        "ok": False,
        "error": error.slug,
        "status": error.status if isinstance(error, ApiError) else None,
        "message": error.api_message if isinstance(error, ApiError) else error.message,
    }


class Writer:
    """Writes each ``ItemResult`` in ``fmt`` to ``stream``, flushed line by line (a run killed mid-way
    keeps every line written before)."""

    def __init__(self, stream: TextIO, fmt: str, header: bool = True) -> None:
        self.stream = stream
        self.fmt = fmt
        self._csv = csv.DictWriter(stream, CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
        if fmt == "csv" and header:
            self._csv.writeheader()
        elif fmt == "table" and header:
            stream.write(f"{'STATUS':<8} {'PROB':>6}  {'LABEL / ERROR':<32} SOURCE\n")

    def write(self, item: ItemResult) -> None:
        rec = record(item)
        if self.fmt == "jsonl":
            self.stream.write(json.dumps(rec, ensure_ascii=False) + "\n")
        elif self.fmt == "csv":
            self._csv.writerow(_flat(rec))
        else:
            self.stream.write(_table_row(rec) + "\n")
        self.stream.flush()


def _flat(rec: dict[str, Any]) -> dict[str, Any]:
    top = (rec.get("predictions") or [{}])[0]
    return {**rec, "ok": "true" if rec["ok"] else "false", **top}


def _table_row(rec: dict[str, Any]) -> str:
    if rec["ok"]:
        top = (rec.get("predictions") or [{"label": "-", "probability": 0.0}])[0]
        return f"{'ok':<8} {top['probability']:>6.3f}  {str(top['label'])[:32]:<32} {rec['source']}"
    status = rec.get("status") or "-"
    return f"{'ERR ' + str(status):<8} {'':>6}  {str(rec['error'])[:32]:<32} {rec['source']}"


def done_sources(path: Path, fmt: str) -> set[str]:
    """The inputs that ``path`` (an earlier run's output in ``fmt``: jsonl or csv) has a line for.
    A torn last line (a run killed while writing it) does not count."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return set()
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines.pop()
    if fmt == "jsonl":
        found = set()
        for line in lines:
            try:
                found.add(str(json.loads(line)["source"]))
            except (ValueError, KeyError, TypeError):
                continue
        return found
    return {row["source"] for row in csv.DictReader(io.StringIO("".join(lines))) if row.get("source")}


def open_for_append(path: Path) -> tuple[TextIO, bool]:
    """``path`` opened to add lines after an earlier run's, dropping a torn last line; and whether it
    already had content (then no new CSV header)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stream = path.open("a+", encoding="utf-8", newline="")
    stream.seek(0)
    content = stream.read()
    if content and not content.endswith("\n"):
        stream.seek(0)
        stream.truncate(len(content.encode("utf-8")) - len(content.rsplit("\n", 1)[-1].encode("utf-8")))
        content = content.rsplit("\n", 1)[0] if "\n" in content else ""
    stream.seek(0, io.SEEK_END)
    return stream, bool(content)
