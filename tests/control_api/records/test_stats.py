"""/stats and compute_stats, checked against brute force over the same rows."""

from __future__ import annotations

from datetime import timedelta

import pytest

from control_api.records.stats import compute_stats
from control_api.tables import utcnow
from tests.control_api.conftest import AuthActions
from tests.control_api.records.history_rows import assert_stats_match, brute_stats


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


@pytest.mark.parametrize("query", ["?since=yesterday", "?until=2025-99-01", "?colour=red"])
def test_bad_stats_queries_are_422(client, auth: AuthActions, query: str) -> None:
    assert client.get(f"/stats{query}", headers=auth.admin_headers()).status_code == 422


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
