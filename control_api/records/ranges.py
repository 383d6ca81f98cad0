"""Cutting a since/until range into what each rollup can answer: whole days, whole hours, and the raw-row
edges left over (at most an hour at each end), so a query reads a few rollup rows instead of every row."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from .rollup_writes import ceil_to, floor_to

Range = tuple[datetime | None, datetime | None]


@dataclass
class Pieces:
    days: Range | None = None  # whole days (None: no whole day in the range, or days not asked for)
    hours: list[Range] = field(default_factory=list)  # whole hours
    rows: list[Range] = field(default_factory=list)  # raw-row edges


def _hours(since: datetime | None, until: datetime | None, out: Pieces) -> None:
    lo = ceil_to(since, "1h") if since is not None else None
    hi = floor_to(until, "1h") if until is not None else None
    if lo is not None and hi is not None and lo >= hi:
        out.rows.append((since, until))
        return
    out.hours.append((lo, hi))
    if since is not None and lo is not None and since < lo:
        out.rows.append((since, lo))
    if until is not None and hi is not None and hi < until:
        out.rows.append((hi, until))


def split(since: datetime | None, until: datetime | None, days: bool = True) -> Pieces:
    """[since, until) as whole days (when ``days``), whole hours and raw-row edges."""
    out = Pieces()
    if not days:
        _hours(since, until, out)
        return out
    lo = ceil_to(since, "1d") if since is not None else None
    hi = floor_to(until, "1d") if until is not None else None
    if lo is not None and hi is not None and lo >= hi:
        _hours(since, until, out)
        return out
    out.days = (lo, hi)
    if since is not None and lo is not None and since < lo:
        _hours(since, lo, out)
    if until is not None and hi is not None and hi < until:
        _hours(hi, until, out)
    return out
