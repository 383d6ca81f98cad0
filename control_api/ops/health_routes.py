"""/health: is the database reachable, and is TorchServe healthy? 503 names the failing part."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from apiflask import APIBlueprint

from ..extensions import db, torchserve
from . import counters
from .schemas import HealthOut

log = logging.getLogger(__name__)
bp = APIBlueprint("health", __name__, tag="Health")


def _database() -> tuple[bool, str]:
    try:
        db.session.execute(sa.text("SELECT 1"))
        db.session.rollback()
    except Exception as exc:
        counters.DB_ERRORS.inc()
        log.warning("Health check: database unavailable: %s", exc)
        db.session.rollback()
        return False, f"{type(exc).__name__}"
    return True, "ok"


@bp.get("/health")
@bp.doc(summary="Liveness of the API, its database and TorchServe", responses={503: "A dependency is down"})
@bp.output(HealthOut)
def health() -> tuple[dict[str, Any], int, dict[str, str]]:
    """No authentication: for load balancers and orchestrators."""
    db_ok, db_detail = _database()
    ts_ok, ts_detail = torchserve.client.ping()
    body: dict[str, Any] = {
        "status": "ok" if db_ok and ts_ok else "unavailable",
        "database": "ok" if db_ok else "unavailable",
        "torchserve": "ok" if ts_ok else "unavailable",
    }
    headers = {"Cache-Control": "no-store"}
    if db_ok and ts_ok:
        return body, 200, headers
    failing = [name for name, ok in (("database", db_ok), ("torchserve", ts_ok)) if not ok]
    details = {"database": db_detail, "torchserve": ts_detail}
    body["error"] = "service_unavailable"
    body["message"] = "; ".join(f"{name}: {details[name]}" for name in failing)
    return body, 503, headers
