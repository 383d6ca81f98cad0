"""/history: listing, filters, bad queries and deletion."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from control_api.extensions import db
from control_api.tables import History, utcnow
from tests.control_api.conftest import ADMIN_TOKEN, AuthActions, app_on, torchserve_settings


def _get(client, headers, query: str = ""):
    return client.get(f"/history{query}", headers=headers)


def test_history_lists_newest_first_with_paging(client, auth: AuthActions, seeded) -> None:
    headers = auth.admin_headers()
    body = _get(client, headers, "?per_page=7&page=2").get_json()
    assert body["total"] == 300 and body["page"] == 2 and body["per_page"] == 7 and len(body["items"]) == 7
    newest = sorted(seeded, key=lambda r: r["created_at"], reverse=True)
    expected = [r["processing_time"] for r in newest[7:14]]
    assert [i["processing_time"] for i in body["items"]] == pytest.approx(expected)
    item = body["items"][0]
    for field in (
        "id",
        "request_type",
        "username",
        "model_name",
        "model_version",
        "processing_time",
        "input_data_size",
        "image_width",
        "image_height",
        "status_code",
        "result",
        "error_message",
        "created_at",
    ):
        assert field in item
    assert item["created_at"].endswith("Z")
    default = _get(client, headers).get_json()
    assert default["per_page"] == 50 and default["page"] == 1 and len(default["items"]) == 50
    assert _get(client, headers, "?page=10000000").get_json()["items"] == []


def test_history_filters(client, auth: AuthActions, seeded) -> None:
    headers = auth.admin_headers()

    def total(query: str) -> int:
        response = _get(client, headers, query)
        assert response.status_code == 200, response.get_json()
        return int(response.get_json()["total"])

    assert total("?status_code=415") == sum(1 for r in seeded if r["status_code"] == 415)
    assert total("?username=user1") == sum(1 for r in seeded if r["username"] == "user1")
    assert total("?username=") == sum(1 for r in seeded if r["username"] == "")  # unauthenticated requests
    assert total("?username=nobody") == 0
    cut = utcnow() - timedelta(hours=2)
    older = sum(1 for r in seeded if r["created_at"] < cut)
    for spelled in (
        cut.isoformat() + "Z",
        cut.isoformat(),
        quote((cut + timedelta(hours=2)).isoformat() + "+02:00"),
    ):
        assert total(f"?until={spelled}") == older
    plus_as_space = (cut + timedelta(hours=1)).isoformat() + "+01:00"  # '+' left unencoded arrives as a space
    assert total(f"?until={plus_as_space}") == older
    assert total(f"?since={cut.isoformat()}Z") == 300 - older
    assert total(f"?since={cut.isoformat()}Z&status_code=200&username=user0") == sum(
        1 for r in seeded if r["created_at"] >= cut and r["status_code"] == 200 and r["username"] == "user0"
    )


@pytest.mark.parametrize(
    "query",
    [
        "?page=0",
        "?page=-1",
        "?page=abc",
        "?page=1.5",
        "?page=99999999999999999999999",
        "?per_page=0",
        "?per_page=501",
        "?status_code=99",
        "?status_code=abc",
        "?since=yesterday",
        "?since=2025-13-45",
        "?since=2025-01-01T25:00:00",
        "?until=" + "9" * 100,
        "?since=0001-01-01T00:00:00%2B05:00",
        "?since=2025-02-01&until=2025-01-01",
        "?username=%C3%BCnic%C3%B8de",
        "?username=a%00b",
        "?colour=red",
    ],
)
def test_bad_history_queries_are_422(client, auth: AuthActions, query: str) -> None:
    response = _get(client, auth.admin_headers(), query)
    assert response.status_code == 422, (query, response.get_json())
    assert response.get_json()["error"] == "validation_error"


def _delete(client, headers: dict[str, str], query: str = "", token: str | None = ADMIN_TOKEN):
    extra = {"X-Admin-Token": token} if token is not None else {}
    return client.delete(f"/history{query}", headers={**headers, **extra})


def _count(app) -> int:
    with app.app_context():
        return int(db.session.scalar(sa.select(sa.func.count()).select_from(History)) or 0)


def test_delete_needs_the_admin_token(app, client, auth: AuthActions, seeded) -> None:
    admin = auth.admin_headers()
    for token, slug in (
        (None, "invalid_admin_token"),
        ("wrong", "invalid_admin_token"),
        ("", "invalid_admin_token"),
        (ADMIN_TOKEN[:-1], "invalid_admin_token"),
        ("ünï", "invalid_admin_token"),
    ):
        response = _delete(client, admin, token=token)
        assert response.status_code == 403 and response.get_json()["error"] == slug
    assert _delete(client, auth.headers("bob"), token=ADMIN_TOKEN).status_code == 403
    assert client.delete("/history", headers={"X-Admin-Token": ADMIN_TOKEN}).status_code == 401
    assert _count(app) == 300


def test_delete_before_then_all(app, client, auth: AuthActions, seeded) -> None:
    admin = auth.admin_headers()
    cut = utcnow() - timedelta(hours=3, minutes=10)
    expected = sum(1 for r in seeded if r["created_at"] < cut)
    response = _delete(client, admin, f"?before={cut.isoformat()}Z")
    assert response.status_code == 200 and response.get_json() == {"deleted": expected}
    assert _count(app) == 300 - expected
    stats = client.get("/stats", headers=admin).get_json()
    assert stats["total_requests"] == 300 - expected
    assert _delete(client, admin, "?before=not-a-date").status_code == 422
    assert _delete(client, admin).get_json() == {"deleted": 300 - expected}
    assert _count(app) == 0 and client.get("/stats", headers=admin).get_json()["total_requests"] == 0


def test_delete_refused_without_configured_admin_token(database_url, fake_ts, tmp_path) -> None:
    with app_on(database_url, tmp_path / "i", ADMIN_TOKEN="", **torchserve_settings(fake_ts)) as app:
        client = app.test_client()
        response = _delete(client, AuthActions(client).admin_headers(), token="")
        assert response.status_code == 403 and response.get_json()["error"] == "admin_token_not_configured"
