"""The rollback guard against a deliberately broken canary, and shadow traffic, on a real TorchServe."""

from __future__ import annotations

import json
import time
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from prometheus_client import REGISTRY

from control_api.extensions import db
from control_api.model_admin.tables import ShadowResult
from control_api.tables import AuditLog, History
from tests.control_api.conftest import AuthActions, app_on, assert_error, torchserve_settings
from tests.control_api.model_admin.conftest import V1, V2
from tests.control_api.model_admin.test_rollout import POLICY, answered_version, classify

BROKEN = "9.9-broken"
# TorchServe calls a function handler once with data=None to initialize it: that call must succeed.
BROKEN_HANDLER = """
def handle(data, context):
    if data is None:
        return None
    raise RuntimeError("this canary is broken on purpose")
"""


def broken_archive(store: Path) -> str:
    """resnet50 version 9.9-broken: a handler that fails every request (its worker loads fine)."""
    name = "resnet50-broken.mar"
    if not (store / name).exists():
        manifest = {
            "runtime": "python",
            "model": {"modelName": "resnet50", "modelVersion": BROKEN, "handler": "broken_handler.py"},
            "archiverVersion": "0.12.0",
        }
        with zipfile.ZipFile(store / name, "w") as mar:
            mar.writestr("MAR-INF/MANIFEST.json", json.dumps(manifest))
            mar.writestr("broken_handler.py", BROKEN_HANDLER)
    return name


def app_for(database_url: str, ts: Any, tmp_path: Path, **overrides: Any) -> Any:
    settings = {**torchserve_settings(ts), "MODEL_STORE": str(ts.model_store), "ROLLOUT_CACHE_SECONDS": 0}
    return app_on(database_url, tmp_path / "instance", **settings, **overrides)


def test_the_guard_rolls_back_a_failing_canary_within_its_window(
    database_url: str, rollout_ts: Any, tmp_path: Path
) -> None:
    with app_for(database_url, rollout_ts, tmp_path) as app:
        client = app.test_client()
        auth = AuthActions(client)
        admin, alice = auth.admin_headers(), auth.headers("alice")
        archive = broken_archive(rollout_ts.model_store)
        registered = client.post("/models", json={"archive": archive}, headers=admin)
        assert registered.status_code == 201, registered.get_json()
        guard = {
            "max_error_rate": 0.5,
            "window_s": 120,
            "min_samples": 3,
            "failed_checks": 2,
            "interval_s": 1,
        }
        body = {"stable": V1, "canary": BROKEN, "canary_percent": 100, "guard": guard}
        try:
            assert client.put(POLICY, json=body, headers=admin).status_code == 200

            statuses = []
            for _ in range(120):
                response = classify(client, alice)
                statuses.append(response.status_code)
                if response.status_code == 200:
                    break
                time.sleep(0.25)

            assert statuses[0] >= 500 and statuses[-1] == 200, statuses
            assert answered_version(classify(client, alice)) == V1
            policy = client.get(POLICY, headers=admin).get_json()
            assert policy["state"] == "rolled_back" and policy["updated_by"] == "system:rollout-guard"
            assert "error rate 100.0%" in policy["reason"] and policy["failed_checks"] == 2
            [model] = client.get("/models", headers=admin).get_json()["models"]
            assert model["rollout"]["state"] == "rolled_back"
            with app.app_context():
                [row] = db.session.scalars(
                    sa.select(AuditLog).where(AuditLog.action == "model.rollout_auto_rollback")
                ).all()
                first_failure = db.session.scalar(
                    sa.select(sa.func.min(History.created_at)).where(History.model_version == BROKEN)
                )
            assert row.details is not None and first_failure is not None
            assert row.actor == "system:rollout-guard" and row.details["canary"] == BROKEN
            assert row.details["measured"]["error_rate"] == 1.0
            assert row.created_at - first_failure <= timedelta(seconds=guard["window_s"])
        finally:
            client.delete(POLICY, headers=admin)
            client.delete(f"/models/resnet50/{BROKEN}", headers=admin)


def classify_and_close(client: Any, headers: dict[str, str]) -> Any:
    """One /forward, its response closed as a server closes it once sent (shadow copies start then)."""
    response = classify(client, headers)
    response.close()
    return response


def dropped() -> float:
    return REGISTRY.get_sample_value("api_shadow_requests_total", {"outcome": "dropped"}) or 0.0


def shadow_rows(app: Any) -> list[ShadowResult]:
    with app.app_context():
        rows = list(db.session.scalars(sa.select(ShadowResult).order_by(ShadowResult.id)))
        db.session.expunge_all()
        return rows


def test_shadow_traffic_compares_versions_without_changing_the_answer(
    database_url: str, rollout_ts: Any, tmp_path: Path
) -> None:
    with app_for(database_url, rollout_ts, tmp_path) as app:
        client = app.test_client()
        auth = AuthActions(client)
        admin, alice = auth.admin_headers(), auth.headers("alice")
        plain = classify(client, alice).get_json()
        body = {"stable": V1, "canary": V2, "canary_percent": 0, "shadow": {"version": V2, "percent": 100}}
        assert client.put(POLICY, json=body, headers=admin).status_code == 200

        answers = [classify_and_close(client, alice).get_json() for _ in range(4)]
        deadline = time.monotonic() + 120
        while len(shadow_rows(app)) < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        rows = shadow_rows(app)

    assert all(a["model"] == plain["model"] and a["predictions"] == plain["predictions"] for a in answers)
    assert len(rows) == 4
    stable_class = plain["predictions"][0]["class_id"]
    for row in rows:
        assert (row.stable_version, row.shadow_version, row.shadow_status) == (V1, V2, 200)
        assert row.stable_class == stable_class and row.shadow_class is not None
        assert row.agree == (row.shadow_class == row.stable_class)
        assert (row.stable_ms or 0) > 0 and (row.shadow_ms or 0) > 0
    assert {row.request_id for row in rows} == {a["request_id"] for a in answers}


def test_a_full_shadow_queue_drops_and_counts(database_url: str, rollout_ts: Any, tmp_path: Path) -> None:
    with app_for(database_url, rollout_ts, tmp_path, SHADOW_QUEUE_SIZE=0) as app:
        client = app.test_client()
        auth = AuthActions(client)
        admin, alice = auth.admin_headers(), auth.headers("alice")
        body = {"stable": V1, "canary": V2, "canary_percent": 0, "shadow": {"version": V2, "percent": 100}}
        assert client.put(POLICY, json=body, headers=admin).status_code == 200
        before = dropped()

        answers = [classify_and_close(client, alice) for _ in range(3)]

        assert [a.status_code for a in answers] == [200, 200, 200]
        assert dropped() - before == 3
        assert shadow_rows(app) == []


def test_shadow_version_must_exist(database_url: str, rollout_ts: Any, tmp_path: Path) -> None:
    with app_for(database_url, rollout_ts, tmp_path) as app:
        client = app.test_client()
        body = {"stable": V1, "canary": V2, "canary_percent": 0, "shadow": {"version": V1, "percent": 5}}
        response = client.put(POLICY, json=body, headers=AuthActions(client).admin_headers())
        assert_error(response, 422, "validation_error")
