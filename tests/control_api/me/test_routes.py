"""/me: the caller's account, own history and usage, password change and account deletion; nothing here
reaches the admin role."""

from __future__ import annotations

from datetime import timedelta

import pytest

from control_api.tables import utcnow
from tests.control_api.conftest import PASSWORD, AuthActions, assert_error
from tests.control_api.me.rows import account, add_rows, audit_rows, history_rows

ME_ENDPOINTS = [
    ("GET", "/me"),
    ("GET", "/me/history"),
    ("GET", "/me/usage"),
    ("POST", "/me/password"),
    ("DELETE", "/me"),
]
NEW_PASSWORD = "a brand new passphrase"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(("method", "path"), ME_ENDPOINTS)
def test_every_me_endpoint_refuses_anonymous_calls(client, method: str, path: str) -> None:
    body = {"password": PASSWORD, "current_password": PASSWORD, "new_password": NEW_PASSWORD}
    assert_error(client.open(path, method=method, json=body), 401, "missing_token")
    assert_error(
        client.open(path, method=method, json=body, headers=bearer("not.a.jwt")), 401, "invalid_token"
    )


def test_me_shows_the_callers_account(client, auth: AuthActions) -> None:
    body = client.get("/me", headers=auth.headers("alice")).get_json()
    assert set(body) == {"id", "username", "is_admin", "disabled", "created_at"}
    assert (body["username"], body["is_admin"], body["disabled"]) == ("alice", False, False)
    assert body["created_at"].endswith("Z")
    assert client.get("/me", headers=auth.admin_headers()).get_json()["is_admin"] is True


def test_me_history_holds_only_the_callers_rows(app, client, auth: AuthActions) -> None:
    headers = auth.headers("alice")
    auth.token("bob")
    alice, bob = account(app, "alice"), account(app, "bob")
    now = utcnow()
    add_rows(app, alice, [now - timedelta(minutes=m) for m in (1, 2, 3)])
    add_rows(app, alice, [now - timedelta(minutes=4)], status=415)
    add_rows(app, bob, [now - timedelta(minutes=m) for m in (1, 2)])
    add_rows(app, None, [now], status=401)

    mine = client.get("/me/history", headers=headers).get_json()
    assert mine["total"] == 4 and {item["username"] for item in mine["items"]} == {"alice"}
    admin_view = client.get("/history?username=alice", headers=auth.admin_headers()).get_json()
    assert mine["items"] == admin_view["items"]  # same rows, same shape as the admin's /history
    assert set(mine) == {"items", "total", "page", "per_page"}
    failed = client.get("/me/history?status_code=415", headers=headers).get_json()
    assert [item["status_code"] for item in failed["items"]] == [415]
    page = client.get("/me/history?per_page=3&page=2", headers=headers).get_json()
    assert (page["total"], len(page["items"]), page["items"][0]["status_code"]) == (4, 1, 415)
    assert client.get("/me/history", headers=auth.headers("bob")).get_json()["total"] == 2


@pytest.mark.parametrize("query", ["?username=bob", "?username=alice", "?user_id=1", "?per_page=501"])
def test_me_history_cannot_be_widened(client, auth: AuthActions, query: str) -> None:
    assert_error(client.get(f"/me/history{query}", headers=auth.headers("alice")), 422, "validation_error")


def test_password_change_revokes_every_earlier_token(client, auth: AuthActions) -> None:
    first, second = auth.token("alice"), auth.token("alice")
    response = client.post(
        "/me/password",
        headers=bearer(first),
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    fresh = response.get_json()["access_token"]
    for old in (first, second):
        assert_error(client.get("/me", headers=bearer(old)), 401, "token_revoked")
        assert_error(client.post("/forward", headers=bearer(old)), 401, "token_revoked")
    assert client.get("/me", headers=bearer(fresh)).status_code == 200
    assert_error(auth.login("alice", PASSWORD), 401, "invalid_credentials")
    assert auth.login("alice", NEW_PASSWORD).status_code == 200


def test_wrong_current_password_is_403_and_changes_nothing(client, auth: AuthActions) -> None:
    headers = auth.headers("alice")
    wrong = {"current_password": "not the password", "new_password": NEW_PASSWORD}
    assert_error(client.post("/me/password", headers=headers, json=wrong), 403, "wrong_password")
    assert client.get("/me", headers=headers).status_code == 200  # the token still works
    assert auth.login("alice", PASSWORD).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"current_password": PASSWORD, "new_password": PASSWORD},  # unchanged
        {"current_password": PASSWORD, "new_password": "short"},
        {"current_password": PASSWORD, "new_password": "x" * 129},
        {"current_password": PASSWORD},
        {"new_password": NEW_PASSWORD},
        {"current_password": PASSWORD, "new_password": NEW_PASSWORD, "is_admin": True},
        {"current_password": PASSWORD, "new_password": NEW_PASSWORD, "username": "root"},
    ],
)
def test_invalid_password_change_is_422(client, auth: AuthActions, body: dict) -> None:
    headers = auth.headers("alice")
    assert_error(client.post("/me/password", headers=headers, json=body), 422, "validation_error")
    assert auth.login("alice", PASSWORD).status_code == 200


def test_self_service_never_changes_the_admin_role(app, client, auth: AuthActions) -> None:
    headers = auth.headers("alice")
    promote = {"is_admin": True}
    for method in ("PATCH", "PUT", "POST"):
        assert_error(client.open("/me", method=method, json=promote, headers=headers), 405)
    change = {"current_password": PASSWORD, "new_password": NEW_PASSWORD, **promote}
    assert_error(client.post("/me/password", headers=headers, json=change), 422)
    assert_error(client.delete("/me", headers=headers, json={"password": PASSWORD, **promote}), 422)
    assert client.get("/me?is_admin=true", headers=headers).get_json()["is_admin"] is False
    assert_error(client.get("/users", headers=headers), 403, "admin_required")
    user = account(app, "alice")
    assert user is not None and user.is_admin is False


def test_delete_me_keeps_the_history_unlinked(app, client, auth: AuthActions) -> None:
    headers = auth.headers("alice")
    add_rows(app, account(app, "alice"), [utcnow() - timedelta(minutes=m) for m in (1, 2)], files=3)
    stats_before = client.get("/stats", headers=auth.admin_headers()).get_json()

    assert_error(
        client.delete("/me", headers=headers, json={"password": "wrong password"}), 403, "wrong_password"
    )
    assert account(app, "alice") is not None
    response = client.delete("/me", headers=headers, json={"password": PASSWORD})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["username"] == "alice" and body["history_rows_kept"] == 2

    assert account(app, "alice") is None
    assert_error(client.get("/me", headers=headers), 401, "invalid_token")
    assert_error(auth.login("alice"), 401, "invalid_credentials")
    assert [(row.user_id, row.username, row.file_count) for row in history_rows(app)] == [(None, "", 3)] * 2
    assert client.get("/stats", headers=auth.admin_headers()).get_json() == stats_before
    assert auth.register("alice").status_code == 201  # the name is free again, for a new account
    refused, done = audit_rows(app, "user.delete_self")
    assert (refused["status_code"], done["status_code"], done["actor"], done["target"]) == (
        403,
        200,
        "alice",
        "alice",
    )
    assert done["details"]["history_rows_kept"] == 2
    for row in (refused, done):
        assert row["details"]["body"] == {"password": "[redacted]"}  # the password is never kept


def test_last_active_admin_cannot_delete_themselves(app, client, auth: AuthActions) -> None:
    headers = auth.admin_headers()
    body = assert_error(client.delete("/me", headers=headers, json={"password": PASSWORD}), 409, "last_admin")
    assert body["message"].startswith("You are the last active admin")
    assert account(app, "admin") is not None
    auth.token("second", admin=True)
    assert client.delete("/me", headers=headers, json={"password": PASSWORD}).status_code == 200
    assert account(app, "admin") is None


@pytest.mark.parametrize("body", [None, {}, {"password": ""}, {"password": PASSWORD, "confirm": True}])
def test_delete_me_needs_exactly_the_password(app, client, auth: AuthActions, body) -> None:
    assert_error(client.delete("/me", headers=auth.headers("alice"), json=body), 422)
    assert account(app, "alice") is not None


def test_openapi_documents_every_me_status(client) -> None:
    paths = client.get("/openapi.json").get_json()["paths"]
    expected = {
        ("/me", "get"): {"414", "200", "401"},
        ("/me", "delete"): {"414", "200", "400", "401", "403", "409", "422", "429"},
        ("/me/history", "get"): {"414", "200", "401", "422"},
        ("/me/usage", "get"): {"414", "200", "401", "422"},
        ("/me/password", "post"): {"414", "200", "400", "401", "403", "422", "429"},
    }
    for (path, method), statuses in expected.items():
        operation = paths[path][method]
        assert set(operation["responses"]) == statuses, (path, method)
        assert operation["security"] == [{"BearerAuth": []}], (path, method)
    usage = {p["name"]: p["schema"] for p in paths["/me/usage"]["get"]["parameters"]}
    assert usage["since"]["format"] == usage["until"]["format"] == "date"
    history = {p["name"]: p["schema"] for p in paths["/me/history"]["get"]["parameters"]}
    assert "username" not in history and history["per_page"]["maximum"] == 500
