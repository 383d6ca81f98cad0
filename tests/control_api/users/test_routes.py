"""/users, for admins: listing and filters, one account, disable/enable, promote/demote, delete; token
revocation, the last active admin, and an audit row for every action."""

from __future__ import annotations

from datetime import timedelta

import pytest

from control_api.tables import utcnow
from tests.control_api.conftest import PASSWORD, AuthActions, assert_error
from tests.control_api.me.rows import account, add_rows, audit_rows, history_rows, user_id


def patch(client, headers, target: int, **changes):
    return client.patch(f"/users/{target}", headers=headers, json=changes)


def names(client, headers, query: str = "") -> list[str]:
    response = client.get(f"/users{query}", headers=headers)
    assert response.status_code == 200, response.get_json()
    return [item["username"] for item in response.get_json()["items"]]


def test_users_are_listed_newest_first_and_filtered(app, client, auth: AuthActions) -> None:
    admin = auth.admin_headers()
    for name in ("alice", "Alina", "bob", "al_x", "alpx"):
        auth.register(name)
    patch(client, admin, user_id(app, "bob"), disabled=True)

    assert names(client, admin) == ["alpx", "al_x", "bob", "Alina", "alice", "admin"]
    assert names(client, admin, "?q=AL") == ["alpx", "al_x", "Alina", "alice"]  # a prefix, any case
    assert names(client, admin, "?q=al_") == ["al_x"]  # '_' is a character here, not a wildcard
    assert names(client, admin, "?is_admin=true") == ["admin"]
    assert names(client, admin, "?disabled=true") == ["bob"]
    assert names(client, admin, "?disabled=false&q=b") == []
    page = client.get("/users?per_page=2&page=3", headers=admin).get_json()
    assert (page["total"], page["page"], page["per_page"]) == (6, 3, 2)
    assert [item["username"] for item in page["items"]] == ["alice", "admin"]
    assert set(page["items"][0]) == {"id", "username", "is_admin", "disabled", "created_at"}


@pytest.mark.parametrize(
    "query", ["?q=", "?q=a%25", "?q=a%20b", "?is_admin=maybe", "?role=admin", "?per_page=0"]
)
def test_bad_user_queries_are_422(client, auth: AuthActions, query: str) -> None:
    assert_error(client.get(f"/users{query}", headers=auth.admin_headers()), 422, "validation_error")


def test_one_user_and_unknown_ids(app, client, auth: AuthActions) -> None:
    admin = auth.admin_headers()
    auth.register("alice")
    body = client.get(f"/users/{user_id(app, 'alice')}", headers=admin).get_json()
    assert (body["username"], body["is_admin"], body["disabled"]) == ("alice", False, False)
    for missing in ("999999", "2147483648", "9" * 40):
        assert_error(client.get(f"/users/{missing}", headers=admin), 404, "user_not_found")
        assert_error(client.patch(f"/users/{missing}", headers=admin, json={"disabled": True}), 404)
        assert_error(client.delete(f"/users/{missing}", headers=admin), 404, "user_not_found")
    for not_an_id in ("-1", "abc", "1.5"):
        assert_error(client.get(f"/users/{not_an_id}", headers=admin), 404)


def test_disabling_revokes_tokens_and_refuses_new_ones(app, client, auth: AuthActions) -> None:
    admin = auth.admin_headers()
    alice = auth.headers("alice")
    target = user_id(app, "alice")
    response = patch(client, admin, target, disabled=True)
    assert response.status_code == 200 and response.get_json()["disabled"] is True
    assert_error(client.get("/me", headers=alice), 401, "token_revoked")
    assert_error(auth.login("alice"), 403, "account_disabled")
    assert_error(auth.login("alice", "wrong password"), 401, "invalid_credentials")  # says nothing more

    assert patch(client, admin, target, disabled=False).get_json()["disabled"] is False
    assert_error(client.get("/me", headers=alice), 401, "token_revoked")  # enabling brings none back
    assert client.get("/me", headers=auth.headers("alice")).status_code == 200


def test_demotion_revokes_tokens_promotion_does_not(app, client, auth: AuthActions) -> None:
    admin = auth.admin_headers()
    boss = auth.headers("boss", admin=True)
    target = user_id(app, "boss")
    assert client.get("/users", headers=boss).status_code == 200

    assert patch(client, admin, target, is_admin=False).get_json()["is_admin"] is False
    assert_error(client.get("/users", headers=boss), 401, "token_revoked")
    fresh = auth.headers("boss")
    assert_error(client.get("/users", headers=fresh), 403, "admin_required")

    assert patch(client, admin, target, is_admin=True).get_json()["is_admin"] is True
    assert client.get("/users", headers=fresh).status_code == 200  # the same token, now an admin's


def test_the_last_active_admin_stays(app, client, auth: AuthActions) -> None:
    admin = auth.admin_headers()
    me = user_id(app, "admin")
    for changes in ({"is_admin": False}, {"disabled": True}, {"is_admin": False, "disabled": True}):
        body = assert_error(patch(client, admin, me, **changes), 409, "last_admin")
        assert body["message"].startswith("You are the last active admin")
    assert_error(client.delete(f"/users/{me}", headers=admin), 409, "last_admin")
    # A disabled admin is no active admin: still the last one.
    auth.token("boss", admin=True)
    patch(client, admin, user_id(app, "boss"), disabled=True)
    assert_error(patch(client, admin, me, is_admin=False), 409, "last_admin")
    user = account(app, "admin")
    assert user is not None and user.is_admin and not user.disabled

    # With another active admin, admins may step down themselves; their token goes with the role.
    patch(client, admin, user_id(app, "boss"), disabled=False)
    assert patch(client, admin, me, is_admin=False).status_code == 200
    assert_error(client.get("/me", headers=admin), 401, "token_revoked")
    [*_, stepped_down] = audit_rows(app, "user.update")
    assert stepped_down["details"]["self"] is True
    assert stepped_down["details"]["changed"] == {"is_admin": [True, False]}


def test_deleting_a_user_keeps_their_history_unlinked(app, client, auth: AuthActions) -> None:
    admin = auth.admin_headers()
    alice = auth.headers("alice")
    add_rows(app, account(app, "alice"), [utcnow() - timedelta(minutes=1)], files=2)
    target = user_id(app, "alice")
    response = client.delete(f"/users/{target}", headers=admin)
    assert response.get_json() == {"id": target, "username": "alice", "history_rows_kept": 1}
    assert_error(client.get("/me", headers=alice), 401, "invalid_token")
    assert [(row.user_id, row.username, row.file_count) for row in history_rows(app)] == [(None, "", 2)]
    assert_error(client.get(f"/users/{target}", headers=admin), 404, "user_not_found")


@pytest.mark.parametrize(
    "body",
    [
        None,
        {},
        {"is_admin": "maybe"},
        {"is_admin": 1},  # JSON booleans only: not 1, "true" or "yes"
        {"disabled": "true"},
        {"disabled": None},
        {"username": "renamed"},
        {"token_version": 0},
        {"is_admin": True, "password": PASSWORD},
    ],
)
def test_invalid_changes_are_422(app, client, auth: AuthActions, body) -> None:
    admin = auth.admin_headers()
    auth.register("alice")
    response = client.patch(f"/users/{user_id(app, 'alice')}", headers=admin, json=body)
    assert_error(response, 422, "validation_error")
    user = account(app, "alice")
    assert user is not None and not user.is_admin and not user.disabled


def test_every_admin_action_is_audited(app, client, auth: AuthActions) -> None:
    admin = auth.admin_headers()
    auth.register("alice")
    target = user_id(app, "alice")
    patch(client, admin, target, is_admin=True)
    patch(client, admin, target, is_admin=False, disabled=True)
    patch(client, admin, user_id(app, "admin"), disabled=True)  # refused: the last active admin
    client.delete(f"/users/{target}", headers=admin)
    client.delete("/users/999999", headers=admin)

    updates = audit_rows(app, "user.update")
    assert [(row["target"], row["status_code"], row["success"]) for row in updates] == [
        ("alice", 200, True),
        ("alice", 200, True),
        ("admin", 409, False),
    ]
    assert [row["details"]["changed"] for row in updates[:2]] == [
        {"is_admin": [False, True]},
        {"is_admin": [True, False], "disabled": [False, True]},
    ]
    assert {row["actor"] for row in updates} == {"admin"}
    deletes = audit_rows(app, "user.delete")
    assert [(row["target"], row["status_code"]) for row in deletes] == [("alice", 200), ("user:999999", 404)]
    # Reading is not an action: not audited.
    client.get("/users", headers=admin)
    client.get(f"/users/{user_id(app, 'admin')}", headers=admin)
    assert len(audit_rows(app, "user.update")) == 3


def test_openapi_documents_every_users_status(client) -> None:
    paths = client.get("/openapi.json").get_json()["paths"]
    expected = {
        ("/users", "get"): {"414", "200", "401", "403", "422"},
        ("/users/{user_id}", "get"): {"414", "200", "401", "403", "404"},
        ("/users/{user_id}", "patch"): {"414", "200", "400", "401", "403", "404", "409", "422"},
        ("/users/{user_id}", "delete"): {"414", "200", "401", "403", "404", "409"},
    }
    for (path, method), statuses in expected.items():
        operation = paths[path][method]
        assert set(operation["responses"]) == statuses, (path, method)
        assert operation["security"] == [{"BearerAuth": []}], (path, method)
    [user_id_param] = paths["/users/{user_id}"]["get"]["parameters"]
    assert user_id_param["schema"]["type"] == "integer"
    query = {p["name"]: p["schema"] for p in paths["/users"]["get"]["parameters"]}
    assert query["q"]["pattern"] and query["is_admin"]["type"] == "boolean"
