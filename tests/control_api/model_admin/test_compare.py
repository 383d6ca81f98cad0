"""GET /stats/compare against recorded history and shadow rows, checked by brute force over the same rows."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from control_api.extensions import db
from control_api.model_admin.tables import ShadowResult
from control_api.tables import utcnow
from tests.control_api.conftest import AuthActions, assert_error
from tests.control_api.records.history_rows import make_rows


def nearest_rank(values: list[float], p: float) -> float | None:
    values = sorted(values)
    return values[max(1, math.ceil(p * len(values))) - 1] if values else None


def expected(rows: list[dict[str, Any]], version: str) -> dict[str, Any]:
    mine = [r for r in rows if r["model_name"] == "resnet50" and r["model_version"] == version]
    ok = [r["processing_time"] for r in mine if r["status_code"] < 400]
    return {
        "requests": len(mine),
        "errors": sum(r["status_code"] >= 500 for r in mine),
        "p95": nearest_rank(ok, 0.95),
        "top1": len(ok),
    }


def test_compare_two_versions_over_one_window(app: Any, client: Any, auth: AuthActions) -> None:
    now = utcnow()
    rows = make_rows(app, 300, now - timedelta(hours=2), timedelta(hours=1, minutes=59))
    make_rows(app, 50, now - timedelta(days=3), timedelta(hours=1), seed=9)  # outside the default window
    with app.app_context():
        for agree in (True, True, True, False, None):
            db.session.add(
                ShadowResult(
                    model_name="resnet50",
                    stable_version="1.0",
                    shadow_version="2.0",
                    stable_class=1,
                    shadow_class=1 if agree else 2,
                    agree=agree,
                    stable_ms=10.0,
                    shadow_ms=12.0,
                    shadow_status=200 if agree is not None else 503,
                )
            )
        db.session.commit()

    body = client.get("/stats/compare?model=resnet50&a=1.0&b=2.0", headers=auth.admin_headers()).get_json()

    for side, version in (("a", "1.0"), ("b", "2.0")):
        want, got = expected(rows, version), body[side]
        assert (got["version"], got["requests"], got["errors"]) == (version, want["requests"], want["errors"])
        assert got["error_rate"] == round(want["errors"] / want["requests"], 4)
        assert got["latency_ms"]["p95"] == want["p95"]
        assert got["top1_counted"] == want["top1"]
        assert got["top1_classes"] == [
            {"class_id": 1, "label": "goldfish", "count": want["top1"], "share": 1.0}
        ]
    assert (body["shadow_compared"], body["agreement_rate"]) == (4, 0.75)


def test_compare_needs_an_admin_and_valid_names(client: Any, auth: AuthActions) -> None:
    admin = auth.admin_headers()
    assert_error(client.get("/stats/compare?model=resnet50&a=1.0&b=2.0", headers=auth.headers()), 403)
    assert_error(client.get("/stats/compare?model=resnet50&a=1.0", headers=admin), 422)
    assert_error(client.get("/stats/compare?model=../x&a=1.0&b=2.0", headers=admin), 422)
    since_after_until = "&since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z"
    assert_error(client.get(f"/stats/compare?model=resnet50&a=1&b=2{since_after_until}", headers=admin), 422)
    empty = client.get("/stats/compare?model=resnet50&a=1&b=2", headers=admin).get_json()
    assert empty["a"]["requests"] == 0 and empty["a"]["latency_ms"]["p50"] is None
    assert empty["agreement_rate"] is None
