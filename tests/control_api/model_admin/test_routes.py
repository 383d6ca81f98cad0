"""Model management through the API: the whole rollout on a dedicated real TorchServe, archive-name
injection, and the mapping of TorchServe's management errors."""

from __future__ import annotations

import io
import os
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from PIL import Image

from control_api.extensions import db
from control_api.tables import AuditLog
from tests.control_api.conftest import AuthActions, app_on, torchserve_settings

V1, V2 = "1.0-untrained", "2.0-untrained"


def jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (160, 120), (90, 140, 30)).save(buf, format="JPEG")
    return buf.getvalue()


def forward(client, headers: dict[str, str], query: str = "") -> Any:
    return client.post(
        f"/forward{query}",
        data={"file": (io.BytesIO(jpeg()), "a.jpg")},
        headers=headers,
        content_type="multipart/form-data",
    )


def ok(response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.get_json())
    body: dict[str, Any] = response.get_json()
    return body


def audit_rows(app) -> list[Any]:
    with app.app_context():
        rows = list(db.session.scalars(sa.select(AuditLog).order_by(AuditLog.id)).all())
        db.session.expunge_all()
        return rows


class Traffic:
    """/forward in a loop on its own thread (its own test client) until stopped: (status, version)s."""

    def __init__(self, app, headers: dict[str, str]) -> None:
        self.client = app.test_client()
        self.headers = headers
        self.seen: list[tuple[int, str | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            response = forward(self.client, self.headers)
            body = response.get_json() or {}
            self.seen.append((response.status_code, (body.get("model") or {}).get("version")))

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=120)


def test_rollout_and_rollback_while_traffic_flows(
    torchserve_model_store_v2: Path, start_extra_torchserve: Callable[..., Any], tmp_path: Path
) -> None:
    """Register 2.0 from the store, forward to each version, make 2.0 the default under load, scale it,
    refuse to delete the default, roll back to 1.0, unregister 2.0: every /forward answered 200.

    A dedicated TorchServe (the session one stays as it is); SQLite only (the database plays no part in
    the management calls, and PostgreSQL is covered by the other API tests)."""
    ts = start_extra_torchserve(torchserve_model_store_v2)
    settings = {**torchserve_settings(ts), "MODEL_STORE": str(torchserve_model_store_v2)}
    with app_on(f"sqlite:///{tmp_path / 'api.db'}", tmp_path / "instance", **settings) as app:
        client = app.test_client()
        auth = AuthActions(client)
        admin, user = auth.admin_headers(), auth.headers("alice")

        model = ok(client.get("/models/resnet50", headers=admin))
        assert model["default_version"] == V1 and [v["version"] for v in model["versions"]] == [V1]
        assert model["versions"][0]["status"] == "READY" and model["versions"][0]["is_default"]
        listed = ok(client.get("/models", headers=admin))
        assert [m["name"] for m in listed["models"]] == ["resnet50"]

        # Register 2.0: synchronous, so its worker is up when the call returns.
        body = {"archive": "resnet50-2.0.mar", "initial_workers": 1, "batch_size": 4, "max_batch_delay": 30}
        registered = ok(client.post("/models", json=body, headers=admin), 201)
        v2 = next(v for v in registered["versions"] if v["version"] == V2)
        assert v2["status"] == "READY" and not v2["is_default"]
        assert (v2["batch_size"], v2["max_batch_delay_ms"], v2["archive"]) == (4, 30, "resnet50-2.0.mar")
        again = client.post("/models", json=body, headers=admin)
        assert ok(again, 409)["error"] == "model_version_exists"

        # Each version on request; the default (1.0) without one.
        assert ok(forward(client, user, f"?version={V1}"))["model"]["version"] == V1
        assert ok(forward(client, user, f"?version={V2}"))["model"]["version"] == V2
        assert ok(forward(client, user))["model"]["version"] == V1

        with Traffic(app, auth.headers("bob")) as traffic:
            time.sleep(0.5)
            changed = ok(client.put(f"/models/resnet50/{V2}/default", headers=admin))
            assert changed["default_version"] == V2
            assert ok(forward(client, user))["model"]["version"] == V2

            scaled = ok(
                client.put(f"/models/resnet50/{V2}/workers", json={"min": 2, "max": 2}, headers=admin)
            )
            v2 = next(v for v in scaled["versions"] if v["version"] == V2)
            assert (v2["min_workers"], v2["max_workers"]) == (2, 2)
            assert sum(w["status"] == "READY" for w in v2["workers"]) == 2

            refused = ok(client.delete(f"/models/resnet50/{V2}", headers=admin), 409)
            assert refused["error"] == "default_version" and "default" in refused["message"]
            zero = client.put(f"/models/resnet50/{V2}/workers", json={"min": 0, "max": 1}, headers=admin)
            assert ok(zero, 409)["error"] == "default_version"

            back = ok(client.put(f"/models/resnet50/{V1}/default", headers=admin))
            assert back["default_version"] == V1
            time.sleep(0.5)
        assert ok(forward(client, user))["model"]["version"] == V1
        statuses = [status for status, _ in traffic.seen]
        assert len(statuses) >= 3 and set(statuses) == {200}, traffic.seen
        assert {version for _, version in traffic.seen} <= {V1, V2}

        gone = ok(client.delete(f"/models/resnet50/{V2}", headers=admin))
        assert [v["version"] for v in gone["versions"]] == [V1]
        assert ok(forward(client, user, f"?version={V2}"), 404)["error"] == "model_not_found"

        # History and /stats keep the versions apart.
        stats_v2 = ok(client.get(f"/stats?model=resnet50&version={V2}", headers=admin))
        assert stats_v2["total_requests"] >= 2 and set(stats_v2["by_model"]["resnet50"]) == {V2}
        stats_all = ok(client.get("/stats?model=resnet50", headers=admin))
        assert set(stats_all["by_model"]["resnet50"]) == {V1, V2}
        history_v2 = ok(client.get(f"/history?model=resnet50&version={V2}&per_page=500", headers=admin))
        assert history_v2["total"] == stats_v2["total_requests"]
        assert {item["model_version"] for item in history_v2["items"]} == {V2}

        # Every step is in the audit log, failures included.
        steps = [(r.action, r.target, r.status_code, r.success) for r in audit_rows(app)]
        assert steps == [
            ("model.register", f"resnet50/{V2}", 201, True),
            ("model.register", f"resnet50/{V2}", 409, False),
            ("model.set_default", f"resnet50/{V2}", 200, True),
            ("model.scale", f"resnet50/{V2}", 200, True),
            ("model.unregister", f"resnet50/{V2}", 409, False),
            ("model.scale", f"resnet50/{V2}", 409, False),
            ("model.set_default", f"resnet50/{V1}", 200, True),
            ("model.unregister", f"resnet50/{V2}", 200, True),
        ]
        rows = audit_rows(app)
        assert all(r.actor == "admin" and r.request_id for r in rows)
        assert rows[0].details["body"]["archive"] == "resnet50-2.0.mar"
        assert rows[2].details["previous_default"] == V1
        assert rows[3].details["previous"] == {"min": 1, "max": 1}


def test_set_default_refused_for_a_version_without_workers(
    torchserve_model_store_v2: Path, start_extra_torchserve: Callable[..., Any], tmp_path: Path
) -> None:
    """A version left with no worker (scaled to 0 outside the API) cannot become the default: /forward
    would answer 503."""
    ts = start_extra_torchserve(torchserve_model_store_v2)
    headers = ts.headers("management")
    register: dict[str, str | int] = {"url": "resnet50-2.0.mar", "initial_workers": 1, "synchronous": "true"}
    registered = requests.post(f"{ts.management_url}/models", params=register, headers=headers, timeout=120)
    assert registered.status_code == 200, registered.text
    park: dict[str, str | int] = {"min_worker": 0, "max_worker": 0, "synchronous": "true"}
    parked = requests.put(
        f"{ts.management_url}/models/resnet50/{V2}", params=park, headers=headers, timeout=120
    )
    assert parked.status_code == 200, parked.text
    settings = {**torchserve_settings(ts), "MODEL_STORE": str(torchserve_model_store_v2)}
    with app_on(f"sqlite:///{tmp_path / 'api.db'}", tmp_path / "instance", **settings) as app:
        client = app.test_client()
        admin = AuthActions(client).admin_headers()
        model = ok(client.get("/models/resnet50", headers=admin))
        assert next(v for v in model["versions"] if v["version"] == V2)["status"] == "UNAVAILABLE"
        refused = ok(client.put(f"/models/resnet50/{V2}/default", headers=admin), 409)
        assert refused["error"] == "no_ready_worker"
        assert ok(client.get("/models/resnet50", headers=admin))["default_version"] == V1


# --- Archive names: nothing but a plain .mar file in the store reaches TorchServe. --------------------------


@pytest.fixture
def store(tmp_path: Path) -> Path:
    store = tmp_path / "store"
    store.mkdir()
    (store / "junk.mar").write_bytes(b"not a zip archive")
    with zipfile.ZipFile(store / "nomanifest.mar", "w") as mar:
        mar.writestr("handler.py", "x = 1\n")
    outside = tmp_path / "outside.mar"
    outside.write_bytes(b"PK")
    os.symlink(outside, store / "escape.mar")
    return store


@pytest.mark.parametrize(
    ("archive", "slug"),
    [
        ("../resnet50.mar", "validation_error"),
        ("../../etc/passwd", "validation_error"),
        ("/etc/passwd", "validation_error"),
        ("/tmp/x.mar", "validation_error"),
        ("http://evil.example/x.mar", "validation_error"),
        ("https://evil.example/x.mar", "validation_error"),
        ("file:///tmp/x.mar", "validation_error"),
        ("s3://bucket/x.mar", "validation_error"),
        ("sub/x.mar", "validation_error"),
        ("sub\\x.mar", "validation_error"),
        ("..mar", "validation_error"),
        (".hidden.mar", "validation_error"),
        ("x.mar\x00.txt", "validation_error"),
        ("x.mar/", "validation_error"),
        ("x.zip", "validation_error"),
        ("x", "validation_error"),
        ("", "validation_error"),
        ("x%2F..%2Fy.mar", "validation_error"),
        ("nosuch.mar", "archive_not_found"),
        ("escape.mar", "archive_not_found"),  # a symlink out of the store
        ("junk.mar", "invalid_archive"),
        ("nomanifest.mar", "invalid_archive"),
    ],
)
def test_archive_injection_is_refused_before_torchserve(
    database_url: str, fake_ts, store: Path, tmp_path: Path, archive: str, slug: str
) -> None:
    settings = {**torchserve_settings(fake_ts), "MODEL_STORE": str(store)}
    with app_on(database_url, tmp_path / "instance", **settings) as app:
        client = app.test_client()
        response = client.post(
            "/models", json={"archive": archive}, headers=AuthActions(client).admin_headers()
        )
        assert response.status_code == 422, response.get_json()
        assert response.get_json()["error"] == slug
        assert not [r for r in fake_ts.requests if r["path"].startswith("/models")]
        [row] = audit_rows(app)
        assert (row.action, row.status_code, row.success) == ("model.register", 422, False)
        assert row.details["body"]["archive"] == archive  # the attempt is on record


def test_non_string_archive_and_extra_fields_are_422(client, auth: AuthActions) -> None:
    admin = auth.admin_headers()
    for body in (
        {"archive": ["x.mar"]},
        {"archive": "x.mar", "url": "http://x"},
        {},
        {"archive": "x.mar", "initial_workers": 0},
    ):
        assert client.post("/models", json=body, headers=admin).status_code == 422, body


def test_model_names_that_cannot_exist_are_404(app, client, auth: AuthActions, fake_ts) -> None:
    admin = auth.admin_headers()
    for path in ("/models/..", "/models/.hidden", "/models/a%20b", "/models/x/..%2F../default"):
        response = client.get(path, headers=admin)
        assert response.status_code in (404, 405), (path, response.get_json())
    response = client.put("/models/resnet50/.../default", headers=admin)
    assert response.status_code == 404 and response.get_json()["error"] == "model_not_found"
    assert not [r for r in fake_ts.requests if r["path"].startswith("/models")]


def test_worker_counts_are_bounded(client, auth: AuthActions, fake_ts) -> None:
    admin = auth.admin_headers()
    scale = "/models/resnet50/1.0/workers"
    too_many = client.put(scale, json={"min": 1, "max": 17}, headers=admin)  # MAX_MODEL_WORKERS is 16
    assert too_many.status_code == 422 and too_many.get_json()["error"] == "too_many_workers"
    inverted = client.put(scale, json={"min": 3, "max": 2}, headers=admin)
    assert inverted.status_code == 422 and inverted.get_json()["error"] == "validation_error"
    big = client.post("/models", json={"archive": "x.mar", "initial_workers": 17}, headers=admin)
    assert big.status_code == 422 and big.get_json()["error"] == "too_many_workers"
    assert not [r for r in fake_ts.requests if r["path"].startswith("/models")]
