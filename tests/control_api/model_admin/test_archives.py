"""Archive upload, listing and deletion: only whole, valid archives get a .mar name in the store."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from control_api.extensions import db
from control_api.tables import AuditLog
from tests.control_api.conftest import AuthActions, app_on, assert_error, torchserve_settings
from tests.control_api.model_admin.archive_helpers import tiny_archive, upload
from tests.control_api.model_admin.test_routes import forward, ok

V2 = "2.0-untrained"


def audit_steps(app: Any) -> list[tuple[str, str | None, int | None]]:
    with app.app_context():
        rows = db.session.scalars(sa.select(AuditLog).order_by(AuditLog.id)).all()
        return [(r.action, r.target, r.status_code) for r in rows]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    store = tmp_path / "store"
    store.mkdir()
    return store


@pytest.fixture
def store_app(database_url: str, fake_ts: Any, store: Path, tmp_path: Path) -> Any:
    settings = {**torchserve_settings(fake_ts), "MODEL_STORE": str(store), "MAX_ARCHIVE_MB": 1}
    with app_on(database_url, tmp_path / "instance", **settings) as app:
        yield app


def test_upload_keeps_the_sha256_and_lists_it(store_app: Any, store: Path) -> None:
    client = store_app.test_client()
    admin = AuthActions(client).admin_headers()
    data = tiny_archive("tiny", "3.1")

    body = ok(upload(client, admin, data, "tiny-3.1.mar"), 201)

    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert (body["model_name"], body["model_version"], body["size_bytes"]) == ("tiny", "3.1", len(data))
    assert (store / "tiny-3.1.mar").read_bytes() == data
    listed = ok(client.get("/models/archives", headers=admin))["archives"]
    assert [(a["file_name"], a["sha256"], a["uploaded_by"]) for a in listed] == [
        ("tiny-3.1.mar", body["sha256"], "admin")
    ]
    again = upload(client, admin, tiny_archive("tiny", "3.2"), "tiny-3.1.mar")
    assert_error(again, 409, "archive_exists")
    assert (store / "tiny-3.1.mar").read_bytes() == data
    assert audit_steps(store_app) == [
        ("model.archive_upload", "tiny-3.1.mar", 201),
        ("model.archive_upload", "tiny-3.1.mar", 409),
    ]


@pytest.mark.parametrize(
    ("data", "slug"),
    [
        (b"not a zip at all", "invalid_archive"),
        (tiny_archive()[:-40], "invalid_archive"),  # truncated: a half-written upload
        (tiny_archive(manifest=False), "invalid_archive"),
        (tiny_archive("../evil", "1.0"), "invalid_archive"),
        (b"", "invalid_archive"),
    ],
    ids=["not-zip", "truncated", "no-manifest", "bad-model-name", "empty"],
)
def test_corrupt_archives_are_refused_and_leave_nothing(
    store_app: Any, store: Path, data: bytes, slug: str
) -> None:
    client = store_app.test_client()

    response = upload(client, AuthActions(client).admin_headers(), data, "broken.mar")

    assert_error(response, 422, slug)
    assert os.listdir(store) == []
    assert audit_steps(store_app) == [("model.archive_upload", "broken.mar", 422)]


def test_oversize_archive_is_413_and_leaves_nothing(store_app: Any, store: Path) -> None:
    client = store_app.test_client()
    big = tiny_archive() + os.urandom(1024 * 1024)  # MAX_ARCHIVE_MB is 1

    response = upload(client, AuthActions(client).admin_headers(), big, "big.mar")

    assert_error(response, 413, "payload_too_large")
    assert os.listdir(store) == []


@pytest.mark.parametrize("file_name", ["../x.mar", "x.zip", ".hidden.mar", "a/b.mar", "http:__x.mar!"])
def test_archive_names_are_checked(store_app: Any, store: Path, file_name: str) -> None:
    client = store_app.test_client()

    response = upload(client, AuthActions(client).admin_headers(), tiny_archive(), file_name)

    assert response.status_code == 422, response.get_json()
    assert os.listdir(store) == []


def test_archives_are_for_admins_only(store_app: Any) -> None:
    client = store_app.test_client()
    user = AuthActions(client).headers("alice")

    assert_error(upload(client, user, tiny_archive(), "t.mar"), 403, "admin_required")
    assert_error(client.get("/models/archives"), 401)
    assert_error(client.delete("/models/archives/t.mar", headers=user), 403, "admin_required")


def test_no_url_reaches_the_store(store_app: Any, store: Path) -> None:
    """The upload takes a file part only: a URL field is refused, and nothing is fetched."""
    client = store_app.test_client()
    admin = AuthActions(client).admin_headers()

    response = client.post("/models/archives", data={"url": "http://127.0.0.1:1/x.mar"}, headers=admin)

    assert response.status_code == 422
    assert os.listdir(store) == []


def test_upload_register_classify_delete_round_trip(
    torchserve_model_store_v2: Path, start_extra_torchserve: Callable[..., Any], tmp_path: Path
) -> None:
    """The real 2.0 archive uploaded into an empty store, registered, answering, and deletable only once
    it is unregistered. SQLite only: the database holds one row here, PostgreSQL is covered above."""
    store = tmp_path / "store"
    store.mkdir()
    os.link(torchserve_model_store_v2 / "resnet50.mar", store / "resnet50.mar")
    ts = start_extra_torchserve(store)
    settings = {**torchserve_settings(ts), "MODEL_STORE": str(store)}
    with app_on(f"sqlite:///{tmp_path / 'api.db'}", tmp_path / "instance", **settings) as app:
        client = app.test_client()
        admin = AuthActions(client).admin_headers()
        data = (torchserve_model_store_v2 / "resnet50-2.0.mar").read_bytes()

        uploaded = ok(upload(client, admin, data, "resnet50-2.0.mar"), 201)
        assert uploaded["sha256"] == hashlib.sha256(data).hexdigest()
        assert (uploaded["model_name"], uploaded["model_version"]) == ("resnet50", V2)
        ok(client.post("/models", json={"archive": "resnet50-2.0.mar"}, headers=admin), 201)
        answered = ok(forward(client, AuthActions(client).headers("alice"), f"?version={V2}"))
        assert answered["model"]["version"] == V2

        in_use = client.delete("/models/archives/resnet50-2.0.mar", headers=admin)
        assert "resnet50/" + V2 in assert_error(in_use, 409, "archive_in_use")["message"]
        ok(client.delete(f"/models/resnet50/{V2}", headers=admin))
        deleted = ok(client.delete("/models/archives/resnet50-2.0.mar", headers=admin))
        assert deleted["sha256"] == uploaded["sha256"]
        assert not (store / "resnet50-2.0.mar").exists()
        assert_error(client.delete("/models/archives/resnet50-2.0.mar", headers=admin), 404)
        assert [a["file_name"] for a in ok(client.get("/models/archives", headers=admin))["archives"]] == [
            "resnet50.mar"
        ]
        assert [step[0] for step in audit_steps(app)] == [
            "model.archive_upload",
            "model.register",
            "model.archive_delete",
            "model.unregister",
            "model.archive_delete",
            "model.archive_delete",
        ]
