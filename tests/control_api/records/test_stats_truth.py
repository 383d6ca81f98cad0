"""/stats and /stats/timeseries against a small hand-computed history: known latencies, classes, failures."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from control_api.records.rollup_writes import bin_value, latency_bin
from control_api.records.writes import record
from tests.control_api.conftest import AuthActions, assert_error

# A fixed hour well in the past: 10:00-11:00 UTC on 2026-11-30 (the rows sit in minutes 10:05 and 10:06).
T0 = datetime(2026, 11, 30, 10, 5, 0)
OK_TIMES = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0]
LABELS = ["tabby", "tabby", "tabby", "goldfish", "goldfish", "tabby", "robin", "tabby", "goldfish", None]
FAILURES = [(401, "", 1.0), (415, "alice", 2.0), (429, "bob", 3.0)]


def _row(moment: datetime, status: int, user: str, ms: float, result: Any, version: str) -> dict[str, Any]:
    return {
        "created_at": moment,
        "request_type": "forward",
        "username": user,
        "model_name": "resnet50" if status != 401 else None,
        "model_version": version if status != 401 else None,
        "file_count": 0 if status == 401 else (len(result) if isinstance(result, list) else 1),
        "processing_time": ms,
        "status_code": status,
        "result": result,
    }


@pytest.fixture
def known(app) -> None:
    """10 successes in minute 10:05 (alice 7, bob 3; 1.0 six, 2.0 four), 3 failures in minute 10:06; the
    last success is a batch of two images (tabby and goldfish)."""
    with app.app_context():
        for i, (ms, label) in enumerate(zip(OK_TIMES, LABELS, strict=True)):
            if label is None:
                result: Any = [{"class_id": 281, "label": "tabby"}, {"class_id": 1, "label": "goldfish"}]
            else:
                result = {"class_id": i, "label": label, "probability": 0.5}
            user = "alice" if i < 7 else "bob"
            record(_row(T0 + timedelta(seconds=i), 200, user, ms, result, "1.0" if i % 5 < 3 else "2.0"))
        for j, (status, user, ms) in enumerate(FAILURES):
            record(_row(T0 + timedelta(minutes=1, seconds=j), status, user, ms, None, "1.0"))


def _stats(client, auth: AuthActions, query: str = "") -> dict[str, Any]:
    response = client.get(f"/stats{query}", headers=auth.admin_headers())
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        # nearest rank ceil(p*n) of 10, 20, ..., 100: 5th, 10th (p95 = ceil(9.5)), 10th
        ("ok", {"p50": 50.0, "p95": 100.0, "p99": 100.0, "min": 10.0, "max": 100.0, "mean": 55.0}),
        # 1, 2, 3
        ("error", {"p50": 2.0, "p95": 3.0, "p99": 3.0, "min": 1.0, "max": 3.0, "mean": 2.0}),
        # 1, 2, 3, 10, 20, ..., 100 (13 values): 7th = 40, 13th, 13th
        ("all", {"p50": 40.0, "p95": 100.0, "p99": 100.0, "min": 1.0, "max": 100.0, "mean": 556 / 13}),
    ],
)
def test_latency_figures_cover_the_chosen_requests(client, auth, known, status, expected) -> None:
    body = _stats(client, auth, f"?status={status}")

    assert body["status"] == status
    assert body["total_requests"] == 13 and body["failed_requests"] == 3
    for name, value in expected.items():
        assert body["processing_time_ms"][name] == pytest.approx(value, abs=1e-3), name


def test_percentiles_default_to_successes(client, auth, known) -> None:
    body = _stats(client, auth)

    assert body["status"] == "ok" and body["processing_time_ms"]["p50"] == 50.0


def test_class_distribution_and_users(client, auth, known) -> None:
    body = _stats(client, auth)

    # tabby: 5 singles + 1 in the batch; goldfish: 3 + 1; robin: 1
    assert body["classes"] == {
        "top": [
            {"label": "tabby", "count": 6},
            {"label": "goldfish", "count": 4},
            {"label": "robin", "count": 1},
        ],
        "other": 0,
        "total": 11,
    }
    users = {u["username"]: u for u in body["users"]["top"]}
    assert users["alice"] == {"username": "alice", "requests": 8, "errors": 1, "images": 8}
    assert users["bob"] == {"username": "bob", "requests": 4, "errors": 1, "images": 5}
    assert users[""] == {"username": "", "requests": 1, "errors": 1, "images": 0}
    assert [u["username"] for u in body["users"]["top"]] == ["alice", "bob", ""]


def test_partial_hours_read_the_rows(client, auth, known) -> None:
    """A range inside the hour: edges from the raw rows. [10:05:03, 10:06:01) holds successes 4..10 and
    the 401."""
    body = _stats(client, auth, "?since=2026-11-30T10:05:03Z&until=2026-11-30T10:06:01Z&status=all")

    assert body["total_requests"] == 8
    assert body["classes"]["total"] == 8  # goldfish, goldfish, tabby, robin, tabby, goldfish, batch of 2
    assert body["users"]["top"][0] == {"username": "alice", "requests": 4, "errors": 0, "images": 4}


def test_top_20_classes_and_other(app, client, auth) -> None:
    with app.app_context():
        for i in range(25):  # class i seen 25 - i times
            for k in range(25 - i):
                result = {"class_id": i, "label": f"class{i:02d}"}
                record(_row(T0 + timedelta(seconds=k), 200, "alice", 5.0, result, "1.0"))

    classes = _stats(client, auth)["classes"]

    assert [c["label"] for c in classes["top"]] == [f"class{i:02d}" for i in range(20)]
    assert classes["other"] == 5 + 4 + 3 + 2 + 1 and classes["total"] == sum(range(1, 26))


def test_timeseries_per_minute(client, auth, known) -> None:
    response = client.get(
        "/stats/timeseries?bucket=1m&since=2026-11-30T10:04:30Z&until=2026-11-30T10:07:00Z",
        headers=auth.admin_headers(),
    )

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["bucket"], body["since"], body["until"]) == (
        "1m",
        "2026-11-30T10:04:00.000000Z",
        "2026-11-30T10:07:00.000000Z",
    )
    empty, busy, failing = body["points"]
    assert empty == {
        "start": "2026-11-30T10:04:00.000000Z",
        "requests": 0,
        "errors": 0,
        "images": 0,
        "p50": None,
        "p95": None,
        "p99": None,
        "by_model": {},
    }
    assert (busy["requests"], busy["errors"], busy["images"]) == (10, 0, 11)
    assert busy["by_model"] == {
        "resnet50": {
            "1.0": {"requests": 6, "errors": 0, "images": 6},
            "2.0": {"requests": 4, "errors": 0, "images": 5},
        }
    }
    # From the histogram: the middle of the bin holding the exact nearest-rank value, within 2.5 %.
    assert busy["p50"] == bin_value(latency_bin(50.0)) == pytest.approx(50.0, rel=0.025)
    assert busy["p95"] == busy["p99"] == bin_value(latency_bin(100.0)) == pytest.approx(100.0, rel=0.025)
    assert (failing["requests"], failing["errors"], failing["p50"]) == (3, 3, None)


def test_timeseries_per_hour_and_day(client, auth, known) -> None:
    for bucket, start in (("1h", "2026-11-30T10:00:00.000000Z"), ("1d", "2026-11-30T00:00:00.000000Z")):
        response = client.get(
            f"/stats/timeseries?bucket={bucket}&since=2026-11-30T10:30:00Z&until=2026-11-30T10:31:00Z",
            headers=auth.admin_headers(),
        )

        (point,) = response.get_json()["points"]
        assert (point["start"], point["requests"], point["errors"], point["images"]) == (start, 13, 3, 13)


@pytest.mark.parametrize(
    ("query", "slug"),
    [
        ("bucket=5m", "validation_error"),
        ("", "validation_error"),
        ("bucket=1h&since=2026-11-30T10:00:00Z&until=2026-11-30T09:00:00Z", "validation_error"),
        ("bucket=1m&since=2026-01-01T00:00:00Z&until=2026-11-30T00:00:00Z", "range_too_large"),
    ],
)
def test_bad_timeseries_queries_are_422(client, auth, query: str, slug: str) -> None:
    response = client.get(f"/stats/timeseries?{query}", headers=auth.admin_headers())

    assert_error(response, 422, slug)


def test_stats_refuses_an_unknown_status(client, auth) -> None:
    assert_error(client.get("/stats?status=some", headers=auth.admin_headers()), 422)
