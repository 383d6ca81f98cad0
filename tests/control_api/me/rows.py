"""Accounts and their history rows for the /me and /users tests: rows recorded the way /forward records
them (row and rollup in one transaction), for a given user."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from control_api.extensions import db
from control_api.records.writes import record
from control_api.tables import AuditLog, History, User


def account(app, username: str) -> User | None:
    """The stored account called ``username`` (exactly), detached; None when there is none."""
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.username == username))
        if user is not None:
            db.session.expunge(user)
        return user


def user_id(app, username: str) -> int:
    user = account(app, username)
    assert user is not None, username
    return int(user.id)


def add_rows(app, owner: User | None, moments: list[datetime], status: int = 200, files: int = 1) -> None:
    """One history row per moment, for ``owner`` (None: anonymous)."""
    with app.app_context():
        for moment in moments:
            record(
                {
                    "created_at": moment,
                    "request_type": "forward",
                    "user_id": owner.id if owner else None,
                    "username": owner.username if owner else "",
                    "model_name": "resnet50",
                    "model_version": "1.0",
                    "file_count": files,
                    "processing_time": 12.5,
                    "status_code": status,
                }
            )


def history_rows(app) -> list[History]:
    with app.app_context():
        found = list(db.session.scalars(sa.select(History).order_by(History.id)).all())
        db.session.expunge_all()
        return found


def audit_rows(app, action: str) -> list[dict[str, Any]]:
    """The audit rows of ``action``, oldest first, as dicts."""
    with app.app_context():
        found = db.session.scalars(sa.select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id))
        return [
            {name: getattr(row, name) for name in ("actor", "target", "details", "status_code", "success")}
            for row in found
        ]
