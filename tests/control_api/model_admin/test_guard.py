"""The rollback guard's checks against a real database: thresholds, consecutive failures, and exactly one
actor when several API processes check at the same moment."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from control_api.extensions import db
from control_api.model_admin import guard, rollout_policy
from control_api.records.writes import record
from control_api.tables import AuditLog, utcnow
from tests.control_api.conftest import app_on, torchserve_settings

GUARD = {
    "max_error_rate": 0.2,
    "max_p95_ms": 1000.0,
    "window_s": 60,
    "min_samples": 5,
    "failed_checks": 1,
    "interval_s": 1,
}


def add_rows(app: Any, version: str, statuses: list[int], ms: float = 50.0) -> None:
    with app.app_context():
        for status in statuses:
            record(
                {
                    "created_at": utcnow(),
                    "request_type": "forward",
                    "username": "u",
                    "model_name": "resnet50",
                    "model_version": version,
                    "processing_time": ms,
                    "status_code": status,
                }
            )


def set_policy(app: Any, **guard_changes: Any) -> None:
    with app.app_context():
        values = {
            "stable": "1.0",
            "canary": "2.0",
            "canary_percent": 10.0,
            "shadow_version": None,
            "shadow_percent": 0.0,
            "guard": {**GUARD, **guard_changes},
        }
        rollout_policy.save("resnet50", values, "admin")


def test_a_healthy_canary_passes_and_too_few_samples_never_fail(app: Any) -> None:
    set_policy(app)
    add_rows(app, "2.0", [502, 502, 502])  # 3 < min_samples: no verdict
    with app.app_context():
        assert guard.check("resnet50") is not None
        policy = rollout_policy.load("resnet50")
    assert policy is not None and policy.state == "canary" and policy.failed_checks == 0


def test_slow_canary_fails_its_checks_then_rolls_back(app: Any) -> None:
    set_policy(app, failed_checks=2, interval_s=1)
    add_rows(app, "2.0", [200] * 10, ms=3000.0)
    with app.app_context():
        first = guard.check("resnet50")
        db.session.execute(sa.text("UPDATE model_rollouts SET last_check_at = NULL"))
        db.session.commit()
        second = guard.check("resnet50")
        policy = rollout_policy.load("resnet50")
    assert first is not None and first.startswith("check failed: p95 3000 ms")
    assert second is not None and second.startswith("rolled back by the guard: p95")
    assert policy is not None and (policy.state, policy.failed_checks) == ("rolled_back", 2)


def test_exactly_one_of_many_processes_rolls_back(
    app: Any, database_url: str, fake_ts: Any, tmp_path: Path
) -> None:
    set_policy(app)
    add_rows(app, "2.0", [502] * 10)
    others = [app_on(database_url, tmp_path / f"other{n}", **torchserve_settings(fake_ts)) for n in range(3)]
    apps = [app] + [ctx.__enter__() for ctx in others]
    barrier = threading.Barrier(8)
    outcomes: list[str | None] = []

    def worker(n: int) -> None:
        with apps[n % len(apps)].app_context():
            barrier.wait()
            outcomes.append(guard.check("resnet50"))
            db.session.remove()

    try:
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        for ctx in others:
            ctx.__exit__(None, None, None)

    acted = [o for o in outcomes if o]
    assert len(outcomes) == 8 and len(acted) == 1, outcomes
    with app.app_context():
        audits = db.session.scalars(
            sa.select(AuditLog).where(AuditLog.action == "model.rollout_auto_rollback")
        ).all()
        policy = rollout_policy.load("resnet50")
    assert len(audits) == 1 and audits[0].actor == "system:rollout-guard"
    assert (
        policy is not None and policy.state == "rolled_back" and "error rate 100.0%" in (policy.reason or "")
    )
