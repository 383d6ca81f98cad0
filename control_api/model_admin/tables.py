"""The tables of model administration: uploaded archives, the desired state of every registered version
(what the reconciler puts back after a TorchServe restart), rollout policies and shadow-traffic results.

Times are naive UTC, like every other table (``control_api.tables``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..tables import BigIntId, utcnow


class ModelArchive(db.Model):  # type: ignore[name-defined]
    """An archive uploaded through ``POST /models/archives``: its file in the model store and its SHA-256."""

    __tablename__ = "model_archives"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    file_name: Mapped[str] = mapped_column(sa.String(255), unique=True, nullable=False)
    model_name: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    model_version: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    sha256: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    size_bytes: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    uploaded_at: Mapped[datetime] = mapped_column(sa.DateTime, nullable=False, default=utcnow)
    uploaded_by: Mapped[str | None] = mapped_column(sa.String(64))


class ModelVersionState(db.Model):  # type: ignore[name-defined]
    """A version registered through the API, as it should be: archive, workers, batching, default or not.

    Written by every successful /models change; read by the reconciler (``reconciler.py``), which registers,
    scales and sets the default again when TorchServe (started with --ncs) has forgotten them.
    """

    __tablename__ = "model_versions"

    model_name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    model_version: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    archive: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    min_workers: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    max_workers: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    batch_size: Mapped[int | None] = mapped_column(sa.Integer)
    max_batch_delay: Mapped[int | None] = mapped_column(sa.Integer)
    response_timeout: Mapped[int | None] = mapped_column(sa.Integer)
    is_default: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime, nullable=False, default=utcnow)


class RolloutPolicy(db.Model):  # type: ignore[name-defined]
    """A model's traffic policy: ``canary_percent`` of unpinned /forward traffic to ``canary``, the rest to
    ``stable``; optionally a share of stable traffic shadowed to ``shadow_version``; the guard's thresholds.

    ``state`` is ``canary`` while the split holds and ``rolled_back`` once all traffic went back to stable
    (by an admin or by the guard, ``reason`` says which). ``revision`` grows with every change: writers
    update ``WHERE revision = <the one they read>``, so of several workers or replicas exactly one wins.
    """

    __tablename__ = "model_rollouts"

    model_name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    stable: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    canary: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    canary_percent: Mapped[float] = mapped_column(sa.Float, nullable=False)
    shadow_version: Mapped[str | None] = mapped_column(sa.String(64))
    shadow_percent: Mapped[float] = mapped_column(sa.Float, nullable=False, default=0.0)
    guard: Mapped[Any | None] = mapped_column(sa.JSON)
    state: Mapped[str] = mapped_column(sa.String(16), nullable=False, default="canary")
    reason: Mapped[str | None] = mapped_column(sa.Text)
    failed_checks: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    last_check_at: Mapped[datetime | None] = mapped_column(sa.DateTime)
    revision: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=1)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime, nullable=False, default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(sa.String(128))


class ShadowResult(db.Model):  # type: ignore[name-defined]
    """One shadowed request: the stable answer's and the shadow version's top-1 class and latencies."""

    __tablename__ = "shadow_results"
    __table_args__ = (sa.Index("ix_shadow_results_model_created_at", "model_name", "created_at"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime, nullable=False, default=utcnow)
    request_id: Mapped[str | None] = mapped_column(sa.String(64))
    model_name: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    stable_version: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    shadow_version: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    stable_class: Mapped[int | None] = mapped_column(sa.Integer)
    shadow_class: Mapped[int | None] = mapped_column(sa.Integer)
    agree: Mapped[bool | None] = mapped_column(sa.Boolean)  # NULL when the shadow call failed
    stable_ms: Mapped[float | None] = mapped_column(sa.Float)
    shadow_ms: Mapped[float | None] = mapped_column(sa.Float)
    shadow_status: Mapped[int] = mapped_column(sa.SmallInteger, nullable=False)
