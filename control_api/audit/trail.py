"""The audit trail: who did which admin action to what, when, and how it ended (``GET /audit`` reads it).

Audited: model registration, default-version changes, scaling and unregistration (``/models``), history
deletion, admin creation (the ``create-admin`` command and the ``ADMIN_USERNAME`` bootstrap), user
management (``/users``) and a user deleting their own account (``DELETE /me``). Request bodies and query
strings are kept in the row's details, less any field named like a password, token or secret.

``@audited(action)`` sits under ``@admin_required`` (only admins get that far; anonymous and non-admin
attempts are answered 401/403 and counted in the request metrics and logs, not audited, so that they
cannot flood the table); ``DELETE /me`` is the one self-service action audited, under
``@token_required``. It writes the row first, committed, with no outcome yet; if that fails the
action is refused (503): nothing is done that the audit log would not show. After the action it
completes the row with the status code, success and error message.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, TypeVar

import sqlalchemy as sa
from flask import current_app, g, request

from ..auth.identity import current_user
from ..errors import APIError, message_of, status_of
from ..extensions import db
from ..ops.counters import DB_ERRORS
from ..ops.request_tracking import current_request_id
from ..tables import AuditLog, utcnow

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
MAX_DETAILS_CHARS = 4000
MAX_ERROR_MESSAGE = 1000
# Fields never kept in the audit log (a password confirming the action, a token): their value is replaced.
SECRET_FIELD = re.compile(r"password|token|secret", re.IGNORECASE)
REDACTED = "[redacted]"


@dataclass
class AuditEntry:
    """What the row will say; a view may refine ``target`` and add ``details`` while it runs."""

    action: str
    target: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def _bounded(details: dict[str, Any]) -> dict[str, Any] | None:
    """The details as stored: JSON-safe and at most MAX_DETAILS_CHARS (a huge body is not kept)."""
    if not details:
        return None
    text = json.dumps(details, default=str)
    if len(text) > MAX_DETAILS_CHARS:
        return {"truncated": True, "size": len(text)}
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _redacted(value: Any) -> Any:
    """``value`` with every field whose name says it holds a secret replaced by ``REDACTED``."""
    if isinstance(value, dict):
        return {k: REDACTED if SECRET_FIELD.search(str(k)) else _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


def _request_details() -> dict[str, Any]:
    details: dict[str, Any] = {}
    if request.args:
        details["query"] = _redacted(request.args.to_dict(flat=True))
    body = request.get_json(silent=True) if request.is_json else None
    if body is not None:
        details["body"] = _redacted(body)
    return details


def add_row(
    action: str,
    actor: str,
    *,
    target: str | None = None,
    details: dict[str, Any] | None = None,
    status_code: int | None = None,
    success: bool | None = None,
    error: str | None = None,
    actor_id: int | None = None,
) -> AuditLog:
    """Add an audit row to the session; the caller commits it (with the action, in one transaction)."""
    row = AuditLog(
        created_at=utcnow(),
        actor=actor[:128],
        actor_id=actor_id,
        action=action,
        target=target[:255] if target else None,
        details=_bounded(details or {}),
        status_code=status_code,
        success=success,
        error_message=error[:MAX_ERROR_MESSAGE] if error else None,
        request_id=current_request_id(),
    )
    db.session.add(row)
    return row


def _begin(entry: AuditEntry) -> int:
    user = current_user()
    try:
        row = add_row(
            entry.action,
            user.username if user is not None else "anonymous",
            actor_id=user.id if user is not None else None,
            target=entry.target,
            details=entry.details,
        )
        db.session.commit()
    except Exception as exc:
        db.session.rollback()
        DB_ERRORS.inc()
        log.exception("Could not write the audit row for %s; refusing the action", entry.action)
        raise APIError(
            503,
            "audit_unavailable",
            "The action was not carried out: it could not be written to the audit log. Retry shortly.",
            headers={"Retry-After": str(current_app.config["RETRY_AFTER_SECONDS"])},
        ) from exc
    return int(row.id)


def _finish(row_id: int, entry: AuditEntry, status: int, error: str | None) -> None:
    values = {
        "status_code": status,
        "success": status < 400,
        "error_message": error[:MAX_ERROR_MESSAGE] if error else None,
        "target": entry.target[:255] if entry.target else None,
        "details": _bounded(entry.details),
    }
    try:
        db.session.execute(sa.update(AuditLog).where(AuditLog.id == row_id).values(**values))
        db.session.commit()
    except Exception:
        # The action has happened; its row stays, without an outcome. Say so loudly.
        db.session.rollback()
        DB_ERRORS.inc()
        log.exception("Could not record the outcome (%s) of audit row %s", status, row_id)


def audited(action: str, target: Callable[[dict[str, Any]], str | None] | None = None) -> Callable[[F], F]:
    """Audit the view as ``action``; ``target(view_kwargs)`` names what it acts on (the view may refine it
    through ``g.audit``)."""

    def decorate(f: F) -> F:
        @wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            entry = g.audit = AuditEntry(action, target(kwargs) if target else None, _request_details())
            row_id = _begin(entry)
            try:
                response = current_app.make_response(f(*args, **kwargs))
            except Exception as exc:
                db.session.rollback()
                _finish(row_id, entry, status_of(exc), message_of(exc))
                raise
            _finish(row_id, entry, response.status_code, None)
            return response

        return wrapper  # type: ignore[return-value]

    return decorate


def set_target(target: str) -> None:
    """Name what the current audited action acts on, once the view knows it."""
    entry: AuditEntry | None = g.get("audit")
    if entry is not None:
        entry.target = target


def note(**details: Any) -> None:
    """Add details to the current request's audit row (no-op outside an audited view)."""
    entry: AuditEntry | None = g.get("audit")
    if entry is not None:
        entry.details.update(details)
