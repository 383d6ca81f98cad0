"""Comparisons of two targets from alternating short runs on the same server: the API-added latency and
(d)/(c) throughput. Cells of the two targets are minutes apart, and TorchServe drifts over minutes by as
much as the difference to be measured; neighbouring runs see the same server state.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from bench.images import BenchImage
from bench.runner import CellPlan, QuietGate, Target, run_loadgen, write_spec


def alternating_runs(
    base: Target, other: Target, image: BenchImage, concurrency: int, rounds: int, seconds: float, work: Path
) -> list[dict[str, dict[str, Any]]]:
    """``rounds`` short runs of ``base`` then ``other`` at ``concurrency`` clients: each round's loadgen
    result per target path. Neighbouring runs see the same server state, so per-round comparisons cancel
    the drift that separates cells minutes apart."""
    plan = CellPlan(
        duration_s={concurrency: seconds}, warmup_s=1.0, gate=QuietGate(max_wait_s=0.0, budget_s=0.0)
    )
    specs = {
        t.path: write_spec(t, image, concurrency, plan, work / f"paired_{t.path}_c{concurrency}")
        for t in (base, other)
    }
    try:
        return [{path: run_loadgen(spec) for path, spec in specs.items()} for _ in range(rounds)]
    finally:
        for spec in specs.values():
            spec.with_suffix(".body").unlink(missing_ok=True)


def paired_p50_difference(
    base: Target, other: Target, image: BenchImage, rounds: int, seconds: float, work: Path
) -> dict[str, Any]:
    """p50 of ``other`` minus p50 of ``base`` at 1 client, measured in alternating short runs.

    The separate cells of ``base`` and ``other`` are minutes apart, and TorchServe's own c=1 latency drifts
    by a few ms over that time, as much as the difference to be measured. Alternating A, B, A, B... and
    taking the median of the per-round differences cancels that drift.
    """
    rounds_out = []
    for results in alternating_runs(base, other, image, 1, rounds, seconds, work):
        p50s = {path: result["latency_ms"]["p50"] for path, result in results.items()}
        rounds_out.append({**p50s, "diff": p50s[other.path] - p50s[base.path]})
    return {
        "base": base.path,
        "other": other.path,
        "image": image.key,
        "rounds": rounds_out,
        "seconds_per_run": seconds,
        "median_diff_ms": statistics.median(r["diff"] for r in rounds_out),
    }


def paired_throughput_ratio(
    base: Target,
    other: Target,
    image: BenchImage,
    concurrency: int,
    rounds: int,
    seconds: float,
    work: Path,
) -> dict[str, Any]:
    """Throughput of ``other`` over ``base`` at ``concurrency`` clients, from alternating short runs.

    (d) sits in front of (c)'s TorchServe, and their cells are minutes apart; TorchServe's own throughput
    drifts over minutes by more than the few percent the API costs. The median of the per-round ratios
    cancels that drift, as ``paired_p50_difference`` does for latency.
    """
    rounds_out = []
    for results in alternating_runs(base, other, image, concurrency, rounds, seconds, work):
        rates = {path: result["throughput_rps"] for path, result in results.items()}
        ratio = rates[other.path] / rates[base.path] if rates[base.path] else float("nan")
        rounds_out.append({**rates, "ratio": ratio})
    return {
        "base": base.path,
        "other": other.path,
        "image": image.key,
        "concurrency": concurrency,
        "rounds": rounds_out,
        "seconds_per_run": seconds,
        "median_ratio": statistics.median(r["ratio"] for r in rounds_out),
    }
