"""The rollups behind /stats and /stats/timeseries, written in the same transaction as each history row.

- ``history_series``: requests, errors and images per minute, hour and day (``span`` '1m', '1h', '1d') and
  model version;
- ``history_latency``: a latency histogram of the successful requests, same spans and keys, one row per
  occupied bin (bins are 1/20 of a natural-log unit wide: about 5 %; see ``rollup_writes.latency_bin``);
- ``history_classes``: the top-1 class of each classified image, per hour and model version;
- ``history_users``: requests, errors and images per hour and day (``span`` '1h', '1d'), user and model
  version.

They are never cut down by the retention purge, so long-range statistics survive it. ``model_name`` and
``model_version`` are '' rather than NULL, as in ``history_rollup``: NULLs never conflict in a unique index.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..tables import BigIntId


class HistorySeries(db.Model):  # type: ignore[name-defined]
    __tablename__ = "history_series"
    __table_args__ = (
        sa.UniqueConstraint("span", "bucket", "model_name", "model_version", name="uq_history_series_key"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    span: Mapped[str] = mapped_column(sa.String(2), nullable=False)  # 1m, 1h or 1d
    bucket: Mapped[datetime] = mapped_column(sa.DateTime, nullable=False)  # start of the span, UTC
    model_name: Mapped[str] = mapped_column(sa.String(64), nullable=False, default="")
    model_version: Mapped[str] = mapped_column(sa.String(64), nullable=False, default="")
    requests: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0)
    errors: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0)
    images: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0)


class HistoryLatency(db.Model):  # type: ignore[name-defined]
    __tablename__ = "history_latency"
    __table_args__ = (
        sa.UniqueConstraint(
            "span", "bucket", "model_name", "model_version", "bin", name="uq_history_latency_key"
        ),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    span: Mapped[str] = mapped_column(sa.String(2), nullable=False)
    bucket: Mapped[datetime] = mapped_column(sa.DateTime, nullable=False)
    model_name: Mapped[str] = mapped_column(sa.String(64), nullable=False, default="")
    model_version: Mapped[str] = mapped_column(sa.String(64), nullable=False, default="")
    bin: Mapped[int] = mapped_column(sa.SmallInteger, nullable=False)
    count: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0)


class HistoryClasses(db.Model):  # type: ignore[name-defined]
    __tablename__ = "history_classes"
    __table_args__ = (
        sa.UniqueConstraint("bucket", "model_name", "model_version", "label", name="uq_history_classes_key"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    bucket: Mapped[datetime] = mapped_column(sa.DateTime, nullable=False)  # start of the hour, UTC
    model_name: Mapped[str] = mapped_column(sa.String(64), nullable=False, default="")
    model_version: Mapped[str] = mapped_column(sa.String(64), nullable=False, default="")
    label: Mapped[str] = mapped_column(sa.String(128), nullable=False)
    count: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0)


class HistoryUsers(db.Model):  # type: ignore[name-defined]
    __tablename__ = "history_users"
    __table_args__ = (
        sa.UniqueConstraint(
            "span", "bucket", "username", "model_name", "model_version", name="uq_history_users_key"
        ),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    span: Mapped[str] = mapped_column(sa.String(2), nullable=False)  # 1h or 1d
    bucket: Mapped[datetime] = mapped_column(sa.DateTime, nullable=False)  # start of the span, UTC
    username: Mapped[str] = mapped_column(sa.String(64), nullable=False, default="")
    model_name: Mapped[str] = mapped_column(sa.String(64), nullable=False, default="")
    model_version: Mapped[str] = mapped_column(sa.String(64), nullable=False, default="")
    requests: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0)
    errors: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0)
    images: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0)
