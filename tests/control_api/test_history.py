"""/history (list, filters, delete) and /stats, checked against brute force over the same rows."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from control_api.extensions import db
from control_api.records.stats import compute_stats
from control_api.records.writes import delete_history, rebuild_rollups, record
from control_api.tables import History, HistoryRollup, utcnow
from tests.control_api.conftest import ADMIN_TOKEN, AuthActions, app_on, torchserve_settings

MODELS = [("resnet50", "1.0"), ("resnet50", "2.0"), (None, None)]
STATUSES = [200, 200, 200, 200, 415, 422, 401, 503]


def make_rows(app, count: int, start: datetime, span: timedelta, seed: int = 7) -> list[dict[str, Any]]:
    """Random rows recorded the way /forward records them (row + rollup upsert per transaction)."""
    rng = random.Random(seed)
    rows = []
    with app.app_context():
        for i in range(count):
            status = rng.choice(STATUSES)
            model, version = (None, None) if status == 401 else rng.choice(MODELS[:2])
            has_image = status == 200
            row = {
                "created_at": start + timedelta(seconds=rng.uniform(0, span.total_seconds())),
                "request_type": "forward",
                "username": "" if status == 401 else f"user{i % 3}",
                "model_name": model,
                "model_version": version,
                "processing_time": round(rng.uniform(5, 500), 3),
                "upstream_time": round(rng.uniform(1, 4), 3),
                "input_data_size": None if status == 401 else rng.randint(100, 10**6),
                "image_width": rng.randint(10, 4000) if has_image else None,
                "image_height": rng.randint(10, 3000) if has_image else None,
                "status_code": status,
                "result": {"class_id": 1, "label": "goldfish", "probability": 0.5} if has_image else None,
                "error_message": None if has_image else "failed",
            }
            record(row)
            rows.append(row)
    return rows


def brute_stats(rows: list[dict[str, Any]], since: datetime | None, until: datetime | None) -> dict[str, Any]:
    chosen = [
        r
        for r in rows
        if (since is None or r["created_at"] >= since) and (until is None or r["created_at"] < until)
    ]
    times = sorted(r["processing_time"] for r in chosen)

    def rank(p: float) -> float | None:
        return times[min(max(math.ceil(p * len(times)), 1), len(times)) - 1] if times else None

    def extremes(values: list[Any]) -> dict[str, Any]:
        if not values:
            return {"mean": None, "min": None, "max": None}
        return {"mean": round(sum(values) / len(values), 3), "min": min(values), "max": max(values)}

    sizes = [r["input_data_size"] for r in chosen if r["input_data_size"] is not None]
    widths = [r["image_width"] for r in chosen if r["image_width"] is not None]
    heights = [r["image_height"] for r in chosen if r["image_height"] is not None]
    codes: dict[str, int] = {}
    for r in chosen:
        codes[str(r["status_code"])] = codes.get(str(r["status_code"]), 0) + 1
    ok = sum(1 for r in chosen if r["status_code"] < 400)
    return {
        "total_requests": len(chosen),
        "successful_requests": ok,
        "failed_requests": len(chosen) - ok,
        "processing_time_ms": {**extremes(times), "p50": rank(0.5), "p95": rank(0.95), "p99": rank(0.99)},
        "input": {"size_bytes": extremes(sizes), "width": extremes(widths), "height": extremes(heights)},
        "status_codes": codes,
    }


def assert_stats_match(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    for key in ("total_requests", "successful_requests", "failed_requests", "status_codes"):
        assert actual[key] == expected[key], key
    for group in ("processing_time_ms",):
        for name, value in expected[group].items():
            assert actual[group][name] == pytest.approx(value, abs=1e-3), (group, name)
    for name, value in expected["input"].items():
        for stat, v in value.items():
            assert actual["input"][name][stat] == pytest.approx(v, abs=1e-3), (name, stat)


@pytest.fixture
def seeded(app) -> list[dict[str, Any]]:
    """300 rows over the last five hours: several rollup buckets and partial edges."""
    return make_rows(app, 300, utcnow() - timedelta(hours=5), timedelta(hours=5))


def test_stats_match_brute_force_over_any_range(app, seeded) -> None:
    now = utcnow()
    ranges = [
        (None, None),
        (now - timedelta(hours=3, minutes=17), None),
        (None, now - timedelta(hours=1, minutes=41)),
        (now - timedelta(hours=4, minutes=5), now - timedelta(hours=1, minutes=3)),
        (now - timedelta(minutes=50), now - timedelta(minutes=10)),  # inside one or two hours
        (now - timedelta(hours=2), now - timedelta(hours=1)),
        (now + timedelta(hours=1), None),  # empty
    ]
    with app.app_context():
        for since, until in ranges:
            assert_stats_match(compute_stats(since, until), brute_stats(seeded, since, until))


def test_stats_endpoint_shape(app, client, auth: AuthActions, seeded) -> None:
    response = client.get("/stats", headers=auth.admin_headers())
    assert response.status_code == 200
    body = response.get_json()
    expected = brute_stats(seeded, None, None)
    assert_stats_match(body, expected)
    assert body["error_rate"] == pytest.approx(expected["failed_requests"] / expected["total_requests"])
    assert set(body["processing_time_ms"]) == {"mean", "p50", "p95", "p99", "min", "max"}
    assert set(body["by_model"]["resnet50"]) == {"1.0", "2.0"}
    per_version = body["by_model"]["resnet50"]["1.0"]
    assert per_version["total_requests"] == sum(
        1 for r in seeded if (r["model_name"], r["model_version"]) == ("resnet50", "1.0")
    )
    assert set(per_version) == {
        "total_requests",
        "successful_requests",
        "failed_requests",
        "mean_processing_time_ms",
        "error_rate",
    }
    assert per_version["error_rate"] == pytest.approx(
        per_version["failed_requests"] / per_version["total_requests"], abs=1e-6
    )


def test_stats_on_an_empty_history(client, auth: AuthActions) -> None:
    body = client.get("/stats", headers=auth.admin_headers()).get_json()
    assert body["total_requests"] == 0 and body["error_rate"] == 0.0
    assert body["processing_time_ms"]["p99"] is None and body["status_codes"] == {}


def test_rollup_kept_incrementally_equals_a_rebuild(app, seeded) -> None:
    def snapshot() -> list[tuple[Any, ...]]:
        columns = [c for c in HistoryRollup.__table__.c if c.name != "id"]
        rows = db.session.execute(sa.select(*columns)).all()
        return sorted(tuple(round(v, 6) if isinstance(v, float) else v for v in row) for row in rows)

    with app.app_context():
        incremental = snapshot()
        rebuild_rollups()
        db.session.commit()
        assert snapshot() == incremental


def test_delete_before_keeps_stats_exact(app, seeded) -> None:
    cut = utcnow() - timedelta(hours=2, minutes=23)  # mid-hour: that bucket is recomputed
    with app.app_context():
        deleted = delete_history(cut)
        assert deleted == sum(1 for r in seeded if r["created_at"] < cut)
        remaining = [r for r in seeded if r["created_at"] >= cut]
        assert_stats_match(compute_stats(), brute_stats(remaining, None, None))
        since = utcnow() - timedelta(hours=3)
        assert_stats_match(compute_stats(since, None), brute_stats(remaining, since, None))


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


@pytest.mark.parametrize("query", ["?since=yesterday", "?until=2025-99-01", "?colour=red"])
def test_bad_stats_queries_are_422(client, auth: AuthActions, query: str) -> None:
    assert client.get(f"/stats{query}", headers=auth.admin_headers()).status_code == 422


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


def test_stats_per_model_version_match_brute_force(app, client, auth: AuthActions, seeded) -> None:
    """/stats?model=&version= narrows everything (percentiles too) so two versions can be compared."""
    admin = auth.admin_headers()
    now = utcnow()
    for model, version in (("resnet50", "1.0"), ("resnet50", "2.0"), ("resnet50", None), (None, "2.0")):
        chosen = [
            r
            for r in seeded
            if (model is None or r["model_name"] == model)
            and (version is None or r["model_version"] == version)
        ]
        query = "&".join(f"{k}={v}" for k, v in (("model", model), ("version", version)) if v)
        for since in (None, now - timedelta(hours=2, minutes=13)):
            full = query + (f"&since={since.isoformat()}Z" if since else "")
            response = client.get(f"/stats?{full}", headers=admin)
            assert response.status_code == 200, response.get_json()
            assert_stats_match(response.get_json(), brute_stats(chosen, since, None))
        listed = client.get(f"/history?{query}", headers=admin).get_json()
        assert listed["total"] == len(chosen)
    versions = client.get("/stats?model=resnet50&version=2.0", headers=admin).get_json()["by_model"]
    assert set(versions) == {"resnet50"} and set(versions["resnet50"]) == {"2.0"}
    assert client.get("/stats?model=../x", headers=admin).status_code == 422
    assert client.get("/stats?model=nosuch", headers=admin).get_json()["total_requests"] == 0
