"""Synthetic history rows, recorded the way /forward records them, and /stats computed by brute force
over the same rows, to check the real thing against."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta
from typing import Any

import pytest

from control_api.records.writes import record

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


def brute_stats(
    rows: list[dict[str, Any]], since: datetime | None, until: datetime | None, status: str = "ok"
) -> dict[str, Any]:
    """/stats by brute force; the latency figures over the ``status`` rows (ok: below 400, error, all)."""
    chosen = [
        r
        for r in rows
        if (since is None or r["created_at"] >= since) and (until is None or r["created_at"] < until)
    ]
    timed = [r for r in chosen if status == "all" or (r["status_code"] < 400) == (status == "ok")]
    times = sorted(r["processing_time"] for r in timed)

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
