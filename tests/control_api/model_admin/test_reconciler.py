"""The reconciler: after TorchServe restarts (--ncs: it forgets what the API registered), the versions,
worker counts and default version kept in the database are put back, logged and audited."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa

from control_api.extensions import db
from control_api.tables import AuditLog
from launcher.torchserve_process import start
from tests.control_api.conftest import AuthActions, app_on, torchserve_settings
from tests.control_api.model_admin.conftest import V1, V2
from tests.control_api.model_admin.test_rollout import jpeg
from tests.control_api.test_server import _token, boot_server


def versions(ts: Any) -> dict[str, tuple[int, int, int, bool]]:
    """version -> (min workers, max workers, batch size, is default), as TorchServe describes them."""
    default = ts.describe("resnet50")[0]["modelVersion"]
    every = requests.get(
        f"{ts.management_url}/models/resnet50/all", headers=ts.headers("management"), timeout=30
    ).json()
    return {
        v["modelVersion"]: (v["minWorkers"], v["maxWorkers"], v["batchSize"], v["modelVersion"] == default)
        for v in every
    }


def test_a_restarted_torchserve_gets_its_versions_back(
    torchserve_model_store_v2: Path, start_extra_torchserve: Callable[..., Any], tmp_path: Path
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    for archive in ("resnet50.mar", "resnet50-2.0.mar"):
        os.link(torchserve_model_store_v2 / archive, store / archive)
    ts = start_extra_torchserve(store)
    settings = {**torchserve_settings(ts), "MODEL_STORE": str(store)}
    with app_on(f"sqlite:///{tmp_path / 'api.db'}", tmp_path / "instance", **settings) as app:
        client = app.test_client()
        admin = AuthActions(client).admin_headers()
        body = {"archive": "resnet50-2.0.mar", "batch_size": 2, "max_batch_delay": 20}
        assert client.post("/models", json=body, headers=admin).status_code == 201
        scaled = client.put(f"/models/resnet50/{V2}/workers", json={"min": 1, "max": 2}, headers=admin)
        assert scaled.status_code == 200, scaled.get_json()
        assert client.put(f"/models/resnet50/{V2}/default", headers=admin).status_code == 200
        wanted = versions(ts)

        ts.stop()
        restarted = start(ts.home, store, ports=ts.ports)
        try:
            forgotten = versions(restarted)
            runner = app.test_cli_runner()
            first = runner.invoke(args=["reconcile-models"])
            second = runner.invoke(args=["reconcile-models"])
            restored = versions(restarted)
            alice = AuthActions(client).headers("alice")
            answered = client.post(
                "/forward",
                data={"file": (io.BytesIO(jpeg()), "a.jpg")},
                headers=alice,
                content_type="multipart/form-data",
            )
        finally:
            restarted.stop()
        with app.app_context():
            rows = db.session.scalars(sa.select(AuditLog).where(AuditLog.action == "model.reconcile")).all()

    assert forgotten == {V1: (1, 1, forgotten[V1][2], True)}
    assert wanted[V2] == (1, 2, 2, True)
    assert first.exit_code == 0, first.output
    assert f"registered resnet50 {V2} from resnet50-2.0.mar" in first.output
    assert f"set the default version of resnet50 to {V2}" in first.output
    assert restored == wanted
    assert second.exit_code == 0 and "matches" in second.output
    assert answered.status_code == 200 and answered.get_json()["model"]["version"] == V2
    [row] = rows
    assert row.actor == "system:reconciler" and row.details is not None
    assert any("registered" in step for step in row.details["steps"])


def test_the_api_puts_them_back_by_itself(
    torchserve_model_store_v2: Path, start_extra_torchserve: Callable[..., Any], tmp_path: Path
) -> None:
    """Under gunicorn (scripts/boot.sh, 2 workers), one worker reconciles every RECONCILE_SECONDS: a
    restarted TorchServe gets the version registered through the API back with nobody calling anything."""
    store = tmp_path / "store"
    store.mkdir()
    for archive in ("resnet50.mar", "resnet50-2.0.mar"):
        os.link(torchserve_model_store_v2 / archive, store / archive)
    ts = start_extra_torchserve(store)
    env = {"MODEL_STORE": str(store), "RECONCILE_SECONDS": "2"}
    with boot_server(f"sqlite:///{tmp_path / 'api.db'}", ts, tmp_path, **env) as server:
        admin = {"Authorization": f"Bearer {_token(server, 'root')}"}
        registered = requests.post(
            f"{server.url}/models", json={"archive": "resnet50-2.0.mar"}, headers=admin, timeout=300
        )
        assert registered.status_code == 201, registered.text
        ts.stop()
        restarted = start(ts.home, store, ports=ts.ports)
        try:
            deadline = time.monotonic() + 180
            while V2 not in versions(restarted) and time.monotonic() < deadline:
                time.sleep(1)
            restored = versions(restarted)
            audit = requests.get(f"{server.url}/audit?action=model.reconcile", headers=admin, timeout=60)
        finally:
            restarted.stop()

    assert V2 in restored  # a restarted TorchServe knows only the resnet50.mar of its config
    assert audit.status_code == 200, audit.text
    steps = [step for item in audit.json()["items"] for step in item["details"]["steps"]]
    assert f"registered resnet50 {V2} from resnet50-2.0.mar" in steps, steps
