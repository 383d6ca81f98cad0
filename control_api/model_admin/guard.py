"""Automatic rollback: a guard that watches a canary and sends all traffic back to stable when it fails.

A policy with a ``guard`` is checked at most every ``interval_s``: over the last ``window_s`` of the
canary's history rows, its error rate (5xx: the handler's failures and TorchServe's) and the p95 latency
of its successful requests. With at least ``min_samples`` rows, a check fails when either is over its
threshold; ``failed_checks`` failures in a row roll the canary back, with the reason in the policy (and so
in ``/models``) and in the audit log (actor ``system:rollout-guard``). A passing check resets the count.

Every API worker and replica may try a check after a /forward on the model (on a background thread, never
in the request's time), but the database is the arbiter: a check starts with an UPDATE conditioned on
the policy's ``revision``, which exactly one of them wins; the others do nothing until the next interval.
"""

from __future__ import annotations

import logging
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app

from ..audit.trail import add_row
from ..extensions import db
from ..tables import History, utcnow
from . import rollout_policy
from .rollout_policy import ROLLED_BACK, Policy

log = logging.getLogger(__name__)

ACTOR = "system:rollout-guard"
_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rollout-guard")
_pending: set[tuple[int, str]] = set()
_pending_lock = threading.Lock()


def due(policy: Policy) -> bool:
    if not (policy.splitting and policy.guard):
        return False
    if policy.last_check_at is None:
        return True
    return utcnow() - policy.last_check_at >= timedelta(seconds=int(policy.guard["interval_s"]))


def measure(policy: Policy) -> dict[str, Any]:
    """The canary's samples, error rate and p95 (ms, successful requests) over the guard's window."""
    assert policy.guard is not None
    since = utcnow() - timedelta(seconds=int(policy.guard["window_s"]))
    rows = (
        History.model_name == policy.model,
        History.model_version == policy.canary,
        History.created_at >= since,
    )
    samples, errors = db.session.execute(
        sa.select(sa.func.count(), sa.func.count().filter(History.status_code >= 500)).where(*rows)
    ).one()
    ok_count = db.session.scalar(sa.select(sa.func.count()).where(*rows, History.status_code < 400)) or 0
    p95 = None
    if ok_count:
        rank = max(1, math.ceil(0.95 * ok_count))
        p95 = db.session.scalar(
            sa.select(History.processing_time)
            .where(*rows, History.status_code < 400)
            .order_by(History.processing_time)
            .offset(rank - 1)
            .limit(1)
        )
    return {
        "samples": int(samples),
        "error_rate": (errors / samples) if samples else None,
        "p95_ms": p95,
    }


def verdict(policy: Policy, measured: dict[str, Any]) -> str | None:
    """Why the check fails (None: it passes, or too few samples to judge)."""
    guard = policy.guard or {}
    if measured["samples"] < int(guard["min_samples"]):
        return None
    if measured["error_rate"] > float(guard["max_error_rate"]):
        return f"error rate {measured['error_rate']:.1%} over {float(guard['max_error_rate']):.1%}"
    if measured["p95_ms"] is not None and measured["p95_ms"] > float(guard["max_p95_ms"]):
        return f"p95 {measured['p95_ms']:.0f} ms over {float(guard['max_p95_ms']):.0f} ms"
    return None


def check(model: str) -> str | None:
    """One guard check of ``model``'s canary, if due and if this process wins it; returns what it did."""
    policy = rollout_policy.load(model)
    if policy is None or not due(policy):
        return None
    if not rollout_policy.update_if_unchanged(model, policy.revision, last_check_at=utcnow()):
        return None  # another worker or replica is checking
    measured = measure(policy)
    failure = verdict(policy, measured)
    failures = policy.failed_checks + 1 if failure else 0
    revision = policy.revision + 1
    assert policy.guard is not None
    if not failure or failures < int(policy.guard["failed_checks"]):
        if failures != policy.failed_checks:
            rollout_policy.update_if_unchanged(model, revision, failed_checks=failures)
        return f"check {'failed' if failure else 'passed'}: {failure or measured}"
    window = policy.guard["window_s"]
    reason = f"rolled back by the guard: {failure} over the last {window} s, {failures} checks in a row"
    if not rollout_policy.update_if_unchanged(
        model,
        revision,
        commit=False,
        state=ROLLED_BACK,
        reason=reason,
        failed_checks=failures,
        updated_at=utcnow(),
        updated_by=ACTOR,
    ):
        db.session.rollback()
        return None
    add_row(
        "model.rollout_auto_rollback",
        ACTOR,
        target=f"{model}/rollout",
        details={
            "canary": policy.canary,
            "stable": policy.stable,
            "measured": measured,
            "guard": policy.guard,
        },
        status_code=200,
        success=True,
    )
    db.session.commit()
    log.warning("%s: %s (all traffic to %s)", model, reason, policy.stable)
    return reason


def _run(app: Flask, model: str) -> None:
    try:
        with app.app_context():
            try:
                check(model)
            finally:
                db.session.remove()
    except Exception:
        log.exception("The rollout guard's check of %s failed", model)
    finally:
        with _pending_lock:
            _pending.discard((id(app), model))


def schedule(policy: Policy | None) -> None:
    """After a /forward: run a check of the policy's canary in the background, if one is due."""
    if policy is None or not due(policy):
        return
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    key = (id(app), policy.model)
    with _pending_lock:
        if key in _pending:
            return
        _pending.add(key)
    _executor.submit(_run, app, policy.model)
