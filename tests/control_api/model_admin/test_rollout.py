"""Canary rollouts through the API against a real TorchServe serving two versions: bad policies, the
split and its stickiness, history rows, promote, rollback, the audit trail."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from PIL import Image

from control_api.extensions import db
from control_api.model_admin.rollout_policy import load
from control_api.model_admin.routing import version_for
from control_api.tables import AuditLog, History
from tests.control_api.conftest import AuthActions, app_on, assert_error, torchserve_settings
from tests.control_api.model_admin.conftest import V1, V2

POLICY = "/models/resnet50/rollout"


def jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (96, 64), (120, 40, 200)).save(buf, format="JPEG")
    return buf.getvalue()


def classify(client: Any, headers: dict[str, str], query: str = "") -> Any:
    return client.post(
        f"/forward{query}",
        data={"file": (io.BytesIO(jpeg()), "a.jpg")},
        headers=headers,
        content_type="multipart/form-data",
    )


def answered_version(response: Any) -> str:
    assert response.status_code == 200, response.get_json()
    version: str = response.get_json()["model"]["version"]
    return version


@pytest.fixture
def rollout_app(database_url: str, rollout_ts: Any, tmp_path: Path) -> Any:
    with app_on(
        database_url,
        tmp_path / "instance",
        **torchserve_settings(rollout_ts),
        MODEL_STORE=str(rollout_ts.model_store),
        ROLLOUT_CACHE_SECONDS=0,
    ) as app:
        yield app


def audit_steps(app: Any) -> list[tuple[str, int | None]]:
    with app.app_context():
        return [
            (r.action, r.status_code) for r in db.session.scalars(sa.select(AuditLog).order_by(AuditLog.id))
        ]


def test_bad_policies_get_a_clear_4xx(rollout_app: Any) -> None:
    client = rollout_app.test_client()
    auth = AuthActions(client)
    admin = auth.admin_headers()
    good = {"stable": V1, "canary": V2, "canary_percent": 10}

    cases = [
        ({**good, "canary": "9.9"}, 422, "unknown_version"),
        ({**good, "stable": "0.1"}, 422, "unknown_version"),
        ({**good, "canary_percent": 101}, 422, "validation_error"),
        ({**good, "canary_percent": -1}, 422, "validation_error"),
        ({**good, "canary": V1}, 422, "validation_error"),
        ({**good, "shadow": {"version": "9.9", "percent": 5}}, 422, "unknown_version"),
        ({**good, "guard": {"max_error_rate": 2}}, 422, "validation_error"),
        ({k: v for k, v in good.items() if k != "canary"}, 422, "validation_error"),
    ]
    for body, status, slug in cases:
        assert_error(client.put(POLICY, json=body, headers=admin), status, slug)
    assert_error(client.put("/models/nosuch/rollout", json=good, headers=admin), 404, "model_not_found")
    assert_error(client.post(f"{POLICY}/promote", headers=admin), 404, "no_rollout")
    assert_error(client.post(f"{POLICY}/rollback", headers=admin), 404, "no_rollout")
    assert_error(client.get(POLICY, headers=admin), 404, "no_rollout")
    assert_error(client.put(POLICY, json=good, headers=auth.headers("alice")), 403, "admin_required")
    assert_error(client.put(POLICY, json=good), 401)

    with rollout_app.app_context():
        assert load("resnet50") is None
    assert {action for action, _ in audit_steps(rollout_app)} == {
        "model.rollout_set",
        "model.rollout_promote",
        "model.rollout_rollback",
    }
    assert all(status is not None and status >= 400 for _, status in audit_steps(rollout_app))


def test_split_is_sticky_and_history_records_the_answering_version(rollout_app: Any) -> None:
    client = rollout_app.test_client()
    auth = AuthActions(client)
    admin = auth.admin_headers()
    set_body = {"stable": V1, "canary": V2, "canary_percent": 50}
    policy = client.put(POLICY, json=set_body, headers=admin).get_json()
    assert (policy["state"], policy["canary_percent"], policy["updated_by"]) == ("canary", 50, "admin")
    users = {f"user{n:02d}": auth.headers(f"user{n:02d}") for n in range(16)}

    seen: dict[str, set[str]] = {name: set() for name in users}
    for _ in range(2):
        for name, headers in users.items():
            seen[name].add(answered_version(classify(client, headers)))
    pinned = answered_version(classify(client, users["user00"], f"?version={V2}"))

    assert pinned == V2
    assert all(len(versions) == 1 for versions in seen.values()), seen
    with rollout_app.app_context():
        split = load("resnet50")
        assert split is not None
        ids = dict(db.session.execute(sa.select(History.username, History.user_id)).all())
        expected = {name: version_for(split, ids[name]) for name in users}
        rows = db.session.execute(sa.select(History.username, History.model_version)).all()
    assert {name: next(iter(versions)) for name, versions in seen.items()} == expected
    assert {V1, V2} == set(expected.values())  # 16 users at 50 %: both sides get some
    for username, version in rows:
        assert version == (V2 if username == "user00" and version == V2 else expected[username])
    assert len(rows) == 33


def test_rollback_then_promote(rollout_app: Any) -> None:
    client = rollout_app.test_client()
    auth = AuthActions(client)
    admin, alice = auth.admin_headers(), auth.headers("alice")
    client.put(POLICY, json={"stable": V1, "canary": V2, "canary_percent": 100}, headers=admin)
    assert answered_version(classify(client, alice)) == V2

    rolled = client.post(f"{POLICY}/rollback", headers=admin).get_json()
    assert (rolled["state"], rolled["reason"]) == ("rolled_back", "rolled back by admin")
    assert answered_version(classify(client, alice)) == V1
    assert_error(client.post(f"{POLICY}/rollback", headers=admin), 409, "already_rolled_back")
    assert_error(client.post(f"{POLICY}/promote", headers=admin), 409, "no_canary")

    client.put(POLICY, json={"stable": V1, "canary": V2, "canary_percent": 0}, headers=admin)
    assert answered_version(classify(client, alice)) == V1
    promoted = client.post(f"{POLICY}/promote", headers=admin)
    assert promoted.status_code == 200, promoted.get_json()
    assert_error(client.get(POLICY, headers=admin), 404, "no_rollout")
    assert client.get("/models/resnet50", headers=admin).get_json()["default_version"] == V2
    assert answered_version(classify(client, alice)) == V2

    assert audit_steps(rollout_app) == [
        ("model.rollout_set", 200),
        ("model.rollout_rollback", 200),
        ("model.rollout_rollback", 409),
        ("model.rollout_promote", 409),
        ("model.rollout_set", 200),
        ("model.rollout_promote", 200),
    ]


def test_the_policy_lives_in_the_database(
    rollout_app: Any, database_url: str, rollout_ts: Any, tmp_path: Path
) -> None:
    """A second app on the same database (another worker, replica, or a restart) routes by the same policy."""
    client = rollout_app.test_client()
    admin = AuthActions(client).admin_headers()
    client.put(POLICY, json={"stable": V1, "canary": V2, "canary_percent": 100}, headers=admin)

    with app_on(database_url, tmp_path / "other", **torchserve_settings(rollout_ts)) as other:
        other_client = other.test_client()
        shown = other_client.get(POLICY, headers=AuthActions(other_client).admin_headers()).get_json()
        version = answered_version(classify(other_client, AuthActions(other_client).headers("bob")))

    assert (shown["stable"], shown["canary"], shown["canary_percent"]) == (V1, V2, 100)
    assert version == V2


def test_models_list_is_reduced_for_users_and_full_for_admins(rollout_app: Any) -> None:
    client = rollout_app.test_client()
    auth = AuthActions(client)
    admin, alice = auth.admin_headers(), auth.headers("alice")
    client.put(POLICY, json={"stable": V1, "canary": V2, "canary_percent": 5}, headers=admin)

    seen_by_user = client.get("/models", headers=alice)
    seen_by_admin = client.get("/models", headers=admin).get_json()

    assert seen_by_user.status_code == 200
    [model] = seen_by_user.get_json()["models"]
    assert set(model) == {"name", "default_version", "versions"}
    assert model["default_version"] == V1
    assert sorted((v["version"], v["is_default"], v["status"]) for v in model["versions"]) == [
        (V1, True, "READY"),
        (V2, False, "READY"),
    ]
    assert all(set(v) == {"version", "is_default", "status"} for v in model["versions"])
    [full] = seen_by_admin["models"]
    assert full["rollout"]["canary"] == V2 and full["rollout"]["state"] == "canary"
    assert {"workers", "archive", "batch_size"} <= set(full["versions"][0])
    assert_error(client.get("/models"), 401)
    assert_error(client.get("/models/resnet50", headers=alice), 403, "admin_required")
    unregister = client.delete(f"/models/resnet50/{V2}", headers=admin)
    assert_error(unregister, 409, "in_rollout")
