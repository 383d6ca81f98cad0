"""The database tables: users, the request history, its hourly rollup for /stats, and the audit log.

Times are stored as naive UTC (``DateTime`` without time zone) on every backend, so SQLite and
PostgreSQL compare and sort them the same way.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import bcrypt
import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Mapped, mapped_column

from .extensions import db

# 64-bit ids on PostgreSQL; SQLite only auto-increments an INTEGER PRIMARY KEY.
BigIntId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def utcnow() -> datetime:
    """Now, as naive UTC (how every timestamp is stored)."""
    return datetime.now(UTC).replace(tzinfo=None)


def _prehash(password: str) -> bytes:
    """bcrypt reads at most 72 bytes (bcrypt 5 raises beyond): hash first, so every byte counts.

    base64 of SHA-256 is 44 ASCII bytes with no NUL, whatever the password's length or script.
    """
    return base64.b64encode(hashlib.sha256(password.encode("utf-8")).digest())


@lru_cache(maxsize=8)
def _dummy_hash(rounds: int) -> bytes:
    """A hash to check against when the user does not exist, so both cases take as long."""
    return bcrypt.hashpw(b"not-a-password", bcrypt.gensalt(rounds))


class User(db.Model):  # type: ignore[name-defined]
    """An account: a user of /forward, or an admin.

    Usernames are unique regardless of case (the unique index on ``lower(username)`` below); the stored
    spelling is the one shown. ``token_version`` is carried by every token issued (``auth.tokens``) and
    bumped when the password changes, the admin role is taken away or the account is disabled: the tokens
    issued before stop working. A disabled account gets no token.
    """

    __tablename__ = "users"
    # AUTOINCREMENT: SQLite must never reuse a deleted user's id (their tokens carry it).
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(64), unique=True, nullable=False)
    password_hash: Mapped[str] = mapped_column(sa.String(128), nullable=False)
    is_admin: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime, nullable=False, default=utcnow)
    disabled: Mapped[bool] = mapped_column(
        sa.Boolean, nullable=False, default=False, server_default=sa.false()
    )
    token_version: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0, server_default="0")

    def set_password(self, password: str, rounds: int | None = None) -> None:
        rounds = rounds or int(current_app.config["BCRYPT_ROUNDS"])
        self.password_hash = bcrypt.hashpw(_prehash(password), bcrypt.gensalt(rounds)).decode("ascii")

    def check_password(self, password: str) -> bool:
        return bcrypt.checkpw(_prehash(password), self.password_hash.encode("ascii"))

    @staticmethod
    def burn_password_check(password: str) -> None:
        """Spend the time of a real check, for an unknown username."""
        bcrypt.checkpw(_prehash(password), _dummy_hash(int(current_app.config["BCRYPT_ROUNDS"])))


# "Alice" and "alice" cannot both exist; finding a user by name (login) goes through this index.
sa.Index("uq_users_username_lower", sa.func.lower(User.username), unique=True)


class History(db.Model):  # type: ignore[name-defined]
    """One row per /forward request, whatever its outcome."""

    __tablename__ = "history"
    __table_args__ = (
        # Newest-first listing and since/until ranges; processing_time makes it covering for the
        # percentiles of a narrow time window (range scan, then sort a few rows), status_code for the
        # percentiles of successes or failures only.
        sa.Index("ix_history_created_at", "created_at", "processing_time", "status_code"),
        # The history filters, each followed by created_at for the newest-first order.
        sa.Index("ix_history_status_code_created_at", "status_code", "created_at"),
        sa.Index("ix_history_username_created_at", "username", "created_at"),
        sa.Index("ix_history_model_created_at", "model_name", "model_version", "created_at"),
        # Tracing one request (GET /history?request_id=...) from a log line or a client's X-Request-ID.
        sa.Index("ix_history_request_id", "request_id"),
        # A user's own rows (GET /me/history) and their daily usage (GET /me/usage): covering for the
        # usage counts, so a user with many rows is summed from the index alone.
        sa.Index("ix_history_user_id_created_at", "user_id", "created_at", "status_code", "file_count"),
        # Percentiles: ORDER BY processing_time LIMIT 1 OFFSET k walks this index; created_at and the
        # model columns and status_code make it covering for the since/until, per-model and status filters.
        sa.Index(
            "ix_history_processing_time",
            "processing_time",
            "created_at",
            "model_name",
            "model_version",
            "status_code",
        ),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime, nullable=False, default=utcnow)
    request_id: Mapped[str | None] = mapped_column(sa.String(64))
    request_type: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    user_id: Mapped[int | None] = mapped_column(sa.Integer)  # no FK: history outlives deleted users
    username: Mapped[str] = mapped_column(sa.String(64), nullable=False, default="")
    model_name: Mapped[str | None] = mapped_column(sa.String(64))
    model_version: Mapped[str | None] = mapped_column(sa.String(64))
    file_count: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    processing_time: Mapped[float] = mapped_column(sa.Float, nullable=False)  # ms, whole request
    upstream_time: Mapped[float | None] = mapped_column(sa.Float)  # ms spent waiting on TorchServe
    input_data_size: Mapped[int | None] = mapped_column(sa.BigInteger)  # bytes
    image_width: Mapped[int | None] = mapped_column(sa.Integer)
    image_height: Mapped[int | None] = mapped_column(sa.Integer)
    status_code: Mapped[int] = mapped_column(sa.SmallInteger, nullable=False)
    result: Mapped[Any | None] = mapped_column(sa.JSON)
    error_message: Mapped[str | None] = mapped_column(sa.Text)


class HistoryRollup(db.Model):  # type: ignore[name-defined]
    """Per-hour aggregates of ``history``, upserted in the same transaction as each history row.

    /stats sums these buckets instead of scanning a million rows, and reads raw rows only for the
    partial hours at the edges of a since/until range. ``model_name``/``model_version`` are '' rather
    than NULL here because NULLs never conflict in a unique index (the upsert needs them to).
    """

    __tablename__ = "history_rollup"
    __table_args__ = (
        sa.UniqueConstraint(
            "bucket", "status_code", "model_name", "model_version", name="uq_history_rollup_key"
        ),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    bucket: Mapped[datetime] = mapped_column(sa.DateTime, nullable=False)  # start of the hour, UTC
    status_code: Mapped[int] = mapped_column(sa.SmallInteger, nullable=False)
    model_name: Mapped[str] = mapped_column(sa.String(64), nullable=False, default="")
    model_version: Mapped[str] = mapped_column(sa.String(64), nullable=False, default="")
    request_count: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0)
    time_sum: Mapped[float] = mapped_column(sa.Float, nullable=False, default=0.0)
    time_min: Mapped[float | None] = mapped_column(sa.Float)
    time_max: Mapped[float | None] = mapped_column(sa.Float)
    size_count: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0)
    size_sum: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0)
    size_min: Mapped[int | None] = mapped_column(sa.BigInteger)
    size_max: Mapped[int | None] = mapped_column(sa.BigInteger)
    dims_count: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0)
    width_sum: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0)
    width_min: Mapped[int | None] = mapped_column(sa.Integer)
    width_max: Mapped[int | None] = mapped_column(sa.Integer)
    height_sum: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0)
    height_min: Mapped[int | None] = mapped_column(sa.Integer)
    height_max: Mapped[int | None] = mapped_column(sa.Integer)


class AuditLog(db.Model):  # type: ignore[name-defined]
    """One row per admin action (model changes, history deletion, admin creation), whatever its outcome.

    The row is written before the action runs (``status_code``/``success`` still NULL) and completed
    after it, so an action that crashed half-way still shows as attempted, and an action whose audit row
    cannot be written is not carried out at all.
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        sa.Index("ix_audit_log_created_at", "created_at"),
        sa.Index("ix_audit_log_action_created_at", "action", "created_at"),
        sa.Index("ix_audit_log_actor_created_at", "actor", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime, nullable=False, default=utcnow)
    # Who: a username, or "cli:<OS user>" for the create-admin command, or "system" for the bootstrap.
    actor: Mapped[str] = mapped_column(sa.String(128), nullable=False)
    actor_id: Mapped[int | None] = mapped_column(sa.Integer)  # no FK: the audit outlives deleted users
    action: Mapped[str] = mapped_column(sa.String(64), nullable=False)  # e.g. model.register
    target: Mapped[str | None] = mapped_column(sa.String(255))  # e.g. resnet50/2.0
    details: Mapped[Any | None] = mapped_column(sa.JSON)
    status_code: Mapped[int | None] = mapped_column(sa.SmallInteger)  # NULL while the action runs
    success: Mapped[bool | None] = mapped_column(sa.Boolean)
    error_message: Mapped[str | None] = mapped_column(sa.Text)
    request_id: Mapped[str | None] = mapped_column(sa.String(64))
