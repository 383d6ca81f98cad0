"""``GET /audit``: the audit log, newest first, filtered. Admins only."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from marshmallow import RAISE

from ..auth.guards import ADMIN_ERRORS, admin_required
from ..pagination import created_between, newest_first
from ..tables import AuditLog
from .schemas import AuditPage, AuditQuery

bp = APIBlueprint("audit", __name__, tag="Audit")


@bp.get("/audit")
@bp.doc(
    summary="Read the audit log of admin actions, newest first",
    security="BearerAuth",
    responses=ADMIN_ERRORS,
)
@admin_required
@bp.input(AuditQuery, location="query", unknown=RAISE)
@bp.output(AuditPage)
def list_audit(query_data: dict[str, Any]) -> dict[str, Any]:
    """Filters combine: `action`, `actor`, `target`, `success`, `since` (inclusive), `until` (exclusive)."""
    where = [
        getattr(AuditLog, name) == query_data[name]
        for name in ("action", "actor", "target", "success")
        if query_data.get(name) is not None
    ]
    where += created_between(AuditLog, query_data)
    return newest_first(AuditLog, where, query_data)
