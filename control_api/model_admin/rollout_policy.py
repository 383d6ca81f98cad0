"""Rollout policies in the database: read (with a short per-process cache, since /forward reads one per
request), written by the admin endpoints and the guard.

The database is the one copy: every gunicorn worker and every API replica reads the same row, so a change
holds everywhere within ``ROLLOUT_CACHE_SECONDS``. Writers that must not race (the guard, rollback) use
``update_if_unchanged``: an UPDATE conditioned on the ``revision`` they read, which exactly one of several
concurrent writers wins.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import current_app

from ..extensions import db
from ..tables import utcnow
from .tables import RolloutPolicy

CANARY, ROLLED_BACK = "canary", "rolled_back"


@dataclass(frozen=True)
class Policy:
    """A snapshot of a model's policy row (safe to keep after the session closes)."""

    model: str
    stable: str
    canary: str
    canary_percent: float
    shadow_version: str | None
    shadow_percent: float
    guard: dict[str, Any] | None
    state: str
    reason: str | None
    failed_checks: int
    last_check_at: datetime | None
    revision: int
    updated_at: datetime
    updated_by: str | None

    @property
    def splitting(self) -> bool:
        """Whether the canary still gets its share (not rolled back)."""
        return self.state == CANARY

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _snapshot(row: RolloutPolicy) -> Policy:
    return Policy(
        model=row.model_name,
        stable=row.stable,
        canary=row.canary,
        canary_percent=float(row.canary_percent),
        shadow_version=row.shadow_version,
        shadow_percent=float(row.shadow_percent or 0.0),
        guard=dict(row.guard) if row.guard else None,
        state=row.state,
        reason=row.reason,
        failed_checks=int(row.failed_checks),
        last_check_at=row.last_check_at,
        revision=int(row.revision),
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


_cache_lock = threading.Lock()


def _cache() -> dict[str, tuple[float, Policy | None]]:
    """This app's cache: model -> (monotonic expiry, policy)."""
    cache: dict[str, tuple[float, Policy | None]] = current_app.extensions.setdefault("rollout_policies", {})
    return cache


def forget(model: str) -> None:
    """Drop this process's cached copy (after a write here)."""
    with _cache_lock:
        _cache().pop(model, None)


def load(model: str) -> Policy | None:
    """The model's policy, from the database."""
    row = db.session.get(RolloutPolicy, model, populate_existing=True)
    return _snapshot(row) if row is not None else None


def cached(model: str) -> Policy | None:
    """The model's policy, at most ``ROLLOUT_CACHE_SECONDS`` old (what /forward routes by)."""
    ttl = float(current_app.config["ROLLOUT_CACHE_SECONDS"])
    now = time.monotonic()
    with _cache_lock:
        hit = _cache().get(model)
    if hit is not None and hit[0] > now:
        return hit[1]
    policy = load(model)
    db.session.commit()  # end the read transaction: the request's own writes start fresh
    with _cache_lock:
        _cache()[model] = (now + ttl, policy)
    return policy


def save(model: str, values: dict[str, Any], actor: str) -> Policy:
    """Create or replace the model's policy (a new split: state canary, no failed checks)."""
    row = db.session.get(RolloutPolicy, model)
    fresh = {
        **values,
        "state": CANARY,
        "reason": None,
        "failed_checks": 0,
        "last_check_at": None,
        "updated_at": utcnow(),
        "updated_by": actor,
    }
    if row is None:
        row = RolloutPolicy(model_name=model, revision=1, **fresh)
        db.session.add(row)
    else:
        for field, value in fresh.items():
            setattr(row, field, value)
        row.revision = row.revision + 1
    db.session.commit()
    forget(model)
    return _snapshot(row)


def update_if_unchanged(model: str, revision: int, commit: bool = True, **values: Any) -> bool:
    """Apply ``values`` only if the row is still at ``revision`` (and bump it); True for the winner.
    With ``commit=False`` the caller commits (e.g. with an audit row, in one transaction)."""
    result = db.session.execute(
        sa.update(RolloutPolicy)
        .where(RolloutPolicy.model_name == model, RolloutPolicy.revision == revision)
        .values(**values, revision=RolloutPolicy.revision + 1)
    )
    won = bool(getattr(result, "rowcount", 0) == 1)
    if commit:
        db.session.commit()
    forget(model)
    return won


def delete(model: str) -> None:
    db.session.execute(sa.delete(RolloutPolicy).where(RolloutPolicy.model_name == model))
    db.session.commit()
    forget(model)
