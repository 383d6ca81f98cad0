"""The audit log: history deletion, admin creation (CLI and bootstrap), refusal when it cannot be written,
and GET /audit. (Model changes are audited in model_admin/test_routes.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from control_api.extensions import db
from control_api.tables import AuditLog
from tests.control_api.conftest import ADMIN_TOKEN, PASSWORD, AuthActions, app_on, torchserve_settings


def rows(app) -> list[Any]:
    with app.app_context():
        found = list(db.session.scalars(sa.select(AuditLog).order_by(AuditLog.id)).all())
        db.session.expunge_all()
        return found


def test_history_deletion_is_audited_success_and_failure(app, client, auth: AuthActions) -> None:
    admin = auth.admin_headers()
    wrong = client.delete("/history", headers={**admin, "X-Admin-Token": "wrong", "X-Request-ID": "del-1"})
    assert wrong.status_code == 403
    right = client.delete(
        "/history?before=2030-01-01T00:00:00Z", headers={**admin, "X-Admin-Token": ADMIN_TOKEN}
    )
    assert right.status_code == 200
    # A non-admin is stopped before the action: 403, and no audit row (nothing was attempted).
    assert (
        client.delete("/history", headers={**auth.headers("bob"), "X-Admin-Token": ADMIN_TOKEN}).status_code
        == 403
    )

    failed, done = rows(app)
    assert (failed.action, failed.actor, failed.target) == ("history.delete", "admin", "history")
    assert (failed.status_code, failed.success, failed.request_id) == (403, False, "del-1")
    assert "X-Admin-Token" in (failed.error_message or "")
    assert (done.status_code, done.success, done.error_message) == (200, True, None)
    assert done.details == {"query": {"before": "2030-01-01T00:00:00Z"}, "deleted": 0}
    assert done.actor_id is not None and done.created_at is not None
    assert ADMIN_TOKEN not in str(done.details) + str(failed.details)  # the secret header is never kept


def test_cli_create_admin_is_audited(app, runner) -> None:
    assert runner.invoke(args=["create-admin", "boss", "--password", PASSWORD]).exit_code == 0
    assert runner.invoke(args=["create-admin", "boss", "--password", "another password"]).exit_code == 0
    created, updated = rows(app)
    assert created.actor.startswith("cli:") and created.action == "admin.create"
    assert (created.target, created.status_code, created.success) == ("boss", 201, True)
    assert created.details["created"] is True and created.request_id is None
    assert updated.action == "admin.update" and updated.details["was_admin"] is True


def test_admin_bootstrap_is_audited_once(tmp_path: Path, fake_ts) -> None:
    url = f"sqlite:///{tmp_path / 'api.db'}"
    settings = torchserve_settings(fake_ts)
    with app_on(url, tmp_path / "i", **settings):
        pass  # creates the schema
    for _ in range(2):  # a second start (another worker, a restart) creates nothing more
        with app_on(url, tmp_path / "i", ADMIN_USERNAME="root", ADMIN_PASSWORD=PASSWORD, **settings) as app:
            pass
    [row] = rows(app)
    assert (row.actor, row.action, row.target, row.success) == ("system", "admin.create", "root", True)
    assert row.details["source"] == "ADMIN_USERNAME"


def test_action_refused_when_the_audit_log_cannot_be_written(app, client, auth: AuthActions) -> None:
    admin = {**auth.admin_headers(), "X-Admin-Token": ADMIN_TOKEN}
    client.post("/register", json={"username": "carol", "password": PASSWORD})
    with app.app_context():
        db.session.execute(sa.text("ALTER TABLE audit_log RENAME TO audit_log_away"))
        db.session.commit()
    try:
        response = client.delete("/history", headers=admin)
        assert response.status_code == 503 and response.get_json()["error"] == "audit_unavailable"
        assert response.headers["Retry-After"]
    finally:
        with app.app_context():
            db.session.execute(sa.text("ALTER TABLE audit_log_away RENAME TO audit_log"))
            db.session.commit()
    assert rows(app) == []


def test_audit_endpoint_lists_and_filters(app, client, auth: AuthActions, runner) -> None:
    admin = auth.admin_headers()
    runner.invoke(args=["create-admin", "boss", "--password", PASSWORD])
    client.delete("/history", headers={**admin, "X-Admin-Token": "wrong"})
    client.delete("/history", headers={**admin, "X-Admin-Token": ADMIN_TOKEN})

    def items(query: str = "") -> list[dict]:
        response = client.get(f"/audit{query}", headers=admin)
        assert response.status_code == 200, response.get_json()
        return list(response.get_json()["items"])

    everything = items()
    assert [i["action"] for i in everything] == ["history.delete", "history.delete", "admin.create"]
    assert everything[0]["created_at"].endswith("Z") and everything[0]["success"] is True
    assert set(everything[0]) >= {"actor", "target", "details", "status_code", "request_id", "error_message"}
    assert [i["status_code"] for i in items("?action=history.delete&success=false")] == [403]
    assert [i["action"] for i in items("?actor=admin")] == ["history.delete", "history.delete"]
    assert items("?since=2999-01-01T00:00:00Z") == []
    page = client.get("/audit?per_page=1&page=2", headers=admin).get_json()
    assert page["total"] == 3 and len(page["items"]) == 1 and page["items"][0]["status_code"] == 403
    assert client.get("/audit?colour=red", headers=admin).status_code == 422
    assert client.get("/audit", headers=auth.headers("bob")).status_code == 403
    assert client.get("/audit").status_code == 401
