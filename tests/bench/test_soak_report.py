"""bench/soak_report.py: the soak's verdicts, per-minute latencies and report files, on recorded data."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench import soak_report


def _meta(**overrides: Any) -> dict[str, Any]:
    return {
        "started_at": "2026-12-02 05:00 UTC",
        "finished_at": "2026-12-02 05:25 UTC",
        "cpu": "test CPU",
        "cores": 2,
        "minutes": 10,
        "load": 0.7,
        "mix": {"forward": 0.7, "stats": 0.3},
        "warmup_minutes": 2,
        "capacity_per_s": 10.0,
        "rate_per_s": 7.0,
        "loadavg_at_start": [1.0, 1.0, 1.0],
        **overrides,
    }


def _samples(api_rss: list[float], ts_rss: list[float], period: float = 30.0) -> list[dict[str, float]]:
    return [
        {"t": i * period, "api_rss_mb": a, "api_fds": 40, "ts_rss_mb": t, "ts_fds": 90}
        for i, (a, t) in enumerate(zip(api_rss, ts_rss, strict=True))
    ]


def _raw(samples: list[dict[str, float]], calls: list[Any], history_rows: int) -> dict[str, Any]:
    return {"meta": _meta(), "samples": samples, "calls": calls, "history_rows": history_rows}


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]

    assert soak_report.percentile(values, 50) == 50.0
    assert soak_report.percentile(values, 99) == 99.0
    assert soak_report.percentile([7.0], 99) == 7.0
    assert math.isnan(soak_report.percentile([], 50))


def test_per_minute_buckets_calls_and_counts_errors() -> None:
    calls = [
        (1.0, "forward", 200, 0.100),
        (30.0, "forward", 200, 0.300),
        (59.0, "stats", 0, 5.0),  # no answer: an error, not a latency
        (61.0, "forward", 503, 0.020),
        (119.0, "token", 200, 0.200),
    ]

    rows = soak_report.per_minute(calls)

    assert [r["minute"] for r in rows] == [1, 2]
    assert rows[0] == {
        "minute": 1,
        "calls": 3,
        "answered": 2,
        "errors": 1,
        "p50_ms": 100.0,
        "p99_ms": 300.0,
    }
    assert rows[1]["errors"] == 1 and rows[1]["answered"] == 2 and rows[1]["p99_ms"] == 200.0


def test_growth_compares_the_first_minute_after_warmup_with_the_last() -> None:
    # Warm-up (first 2 minutes) climbs from 100 to 300 MB; afterwards 300 -> 315 MB.
    api = [100.0, 200.0, 300.0, 300.0, 300.0, 300.0, 300.0, 310.0, 315.0, 315.0, 315.0]
    samples = _samples(api, api)

    result = soak_report.growth(samples, "api_rss_mb", warmup_s=120.0)

    assert result["start"] == 300.0  # the samples at 120, 150 and 180 s
    assert result["end"] == 315.0  # the samples at 240, 270 and 300 s
    assert math.isclose(result["growth_pct"], 5.0)


def test_flat_memory_and_matching_history_pass() -> None:
    flat = [200.0] * 4 + [250.0] * 17
    calls = [(float(i), "forward", 200, 0.1) for i in range(500)] + [(3.0, "forward", 0, 120.0)]

    report = soak_report.build(_raw(_samples(flat, flat), calls, history_rows=500))

    assert report["memory_ok"] and report["history_ok"] and report["passed"]
    assert report["forward_answered"] == 500 and report["calls"] == 501
    assert report["status_counts"] == {"forward 200": 500, "forward no answer": 1}


def test_growing_memory_fails() -> None:
    leaking = [200.0 + 5.0 * i for i in range(21)]  # +5 MB every 30 s: well over 10 % after warm-up
    flat = [200.0] * 21
    calls = [(1.0, "forward", 200, 0.1)]

    report = soak_report.build(_raw(_samples(flat, leaking), calls, history_rows=1))

    assert report["memory"]["ts"]["growth_pct"] > soak_report.MAX_GROWTH_PCT
    assert not report["memory_ok"] and not report["passed"]


def test_a_missing_history_row_fails() -> None:
    flat = [200.0] * 21
    calls = [(float(i), "forward", 200, 0.1) for i in range(10)]

    report = soak_report.build(_raw(_samples(flat, flat), calls, history_rows=9))

    assert report["memory_ok"] and not report["history_ok"] and not report["passed"]


def test_write_produces_json_markdown_and_plot(tmp_path: Path) -> None:
    flat = [200.0] * 21
    calls = [(float(i) * 30, "forward", 200, 0.1 + i / 100) for i in range(20)]
    raw = _raw(_samples(flat, flat), calls, history_rows=20)
    report = soak_report.build(raw)

    paths = soak_report.write(raw, report, tmp_path)

    assert json.loads(paths["soak.json"].read_text())["report"]["passed"] is True
    text = paths["soak.md"].read_text()
    assert "History rows = answered /forward calls: **PASS** (20 rows, 20 answered)" in text
    assert "| 10 | 2 | 2 | 0 |" in text
    assert paths["soak.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
