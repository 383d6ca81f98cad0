"""Drive the load generator against one HTTP target: a pre-flight check, then a cell per image x clients.

A *target* is a URL plus the way to turn a benchmark image into a request body (raw bytes for TorchServe,
whatever the control API wants for (d)). Bodies are encoded here once, written to a file, and the separate
``bench.loadgen`` process only replays them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from bench import process_cpu
from bench.images import BenchImage
from bench.loadgen import LoadSpec, proc_stat_busy
from bench.torchserve import post_bytes

Encoder = Callable[[BenchImage], tuple[bytes, dict[str, str]]]


def raw_body(image: BenchImage) -> tuple[bytes, dict[str, str]]:
    """The image bytes as the whole body (TorchServe hands them to the handler as row["body"])."""
    return image.data, {"Content-Type": "application/octet-stream"}


@dataclass
class Target:
    """One measured path: where to send, how to encode, and what to call it in the report."""

    path: str  # "b", "c", "d"
    precision: str  # "fp32", or "fast" (``--precision auto``)
    label: str
    url: str
    headers: dict[str, str]
    encode: Encoder = raw_body
    fields: list[str] = field(default_factory=list)  # response fields to average (see LoadSpec.fields)
    metrics_url: str | None = None  # TorchServe's Prometheus endpoint, for its queue/inference counters
    cpu_roots: list[int] = field(default_factory=list)  # server pids whose trees' CPU time a cell reports


QUIET_BUSY = 0.25  # share of all cores: above it something else is running (an idle server uses ~1 %)


def busy_share(seconds: float = 1.0) -> float:
    """Whole-machine CPU busy share over ``seconds``."""
    b0, t0 = proc_stat_busy()
    time.sleep(seconds)
    b1, t1 = proc_stat_busy()
    return (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0


@dataclass
class QuietGate:
    """Wait for an idle machine before a measurement: at most ``max_wait_s`` each, ``budget_s`` in all.

    The bench box may be shared (other jobs, test runs): measuring while something else holds a core
    would halve a throughput figure, so each measurement starts on an idle machine when it can, and
    records the busy share it saw when it cannot. The budget keeps a busy machine from stretching the run.
    """

    max_wait_s: float = 60.0
    budget_s: float = 300.0
    waited_s: float = 0.0

    def wait(self, log: Callable[[str], None] | None = None) -> float:
        """Block until idle (or out of patience); returns the last busy share seen."""
        t0 = time.monotonic()
        deadline = t0 + min(self.max_wait_s, max(0.0, self.budget_s - self.waited_s))
        busy = busy_share()
        if busy > QUIET_BUSY and log:
            log(
                f"  machine busy ({100 * busy:.0f} % of all cores): waiting <= {deadline - t0:.0f} s for idle"
            )
        while busy > QUIET_BUSY and time.monotonic() < deadline:
            busy = busy_share()
        self.waited_s += time.monotonic() - t0
        return busy


@dataclass
class CellPlan:
    """How long to measure at each concurrency, and the idle gate before each cell."""

    concurrencies: tuple[int, ...] = (1, 8)
    duration_s: dict[int, float] = field(default_factory=lambda: {1: 10.0, 8: 20.0})
    warmup_s: float = 4.0
    timeout_s: float = 120.0
    gate: QuietGate = field(default_factory=QuietGate)
    server_warmup_s: float = 0.0  # untimed load on a fresh target before its first cell (warm_up_server)


TS_COUNTERS = {
    "ts_inference_requests_total": "requests",
    "ts_queue_latency_microseconds": "queue_us",
    "ts_inference_latency_microseconds": "inference_us",
}


def scrape_torchserve(metrics_url: str) -> dict[str, float]:
    """TorchServe's cumulative per-model counters (summed over models), from its /metrics text."""
    with urllib.request.urlopen(f"{metrics_url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out = dict.fromkeys(TS_COUNTERS.values(), 0.0)
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in TS_COUNTERS:
            out[TS_COUNTERS[name]] += float(line.rsplit(" ", 1)[1])
    return out


def torchserve_breakdown(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Per-request means over the cell (warm-up included): time queued in TorchServe, and time from
    dispatch to the worker until its answer (the handler's batch: decode, model, reply)."""
    n = after["requests"] - before["requests"]
    if n <= 0:
        return {}
    return {
        "requests": n,
        "queue_ms_mean": (after["queue_us"] - before["queue_us"]) / n / 1000.0,
        "inference_ms_mean": (after["inference_us"] - before["inference_us"]) / n / 1000.0,
    }


def preflight(target: Target, image: BenchImage, timeout: float = 600.0) -> dict[str, Any]:
    """One request with a long timeout (lazy compilation, first batch): must succeed; returns a sample."""
    body, extra = target.encode(image)
    t0 = time.perf_counter()
    status, data = post_bytes(target.url, body, {**target.headers, **extra}, timeout)
    elapsed_ms = (time.perf_counter() - t0) * 1000.0
    if not 200 <= status < 300:
        raise RuntimeError(f"pre-flight {target.label} {image.key}: HTTP {status}: {data[:500]!r}")
    try:
        sample: Any = json.loads(data)
    except ValueError:
        sample = data[:500].decode(errors="replace")
    return {"status": status, "first_request_ms": round(elapsed_ms, 1), "response": sample}


def write_spec(target: Target, image: BenchImage, concurrency: int, plan: CellPlan, work: Path) -> Path:
    """Encode the body once into a file and describe the run for the load generator; returns the spec."""
    body, extra = target.encode(image)
    work.mkdir(parents=True, exist_ok=True)
    stem = work / f"{target.path}_{target.precision}_{image.key}_c{concurrency}"
    body_file = stem.with_suffix(".body")
    body_file.write_bytes(body)
    spec = LoadSpec(
        url=target.url,
        body_file=str(body_file),
        headers={**target.headers, **extra},
        concurrency=concurrency,
        duration_s=plan.duration_s[concurrency],
        warmup_s=plan.warmup_s,
        timeout_s=plan.timeout_s,
        fields=target.fields,
    )
    spec_file = stem.with_suffix(".json")
    spec_file.write_text(json.dumps(asdict(spec)))
    return spec_file


def run_loadgen(spec_file: Path) -> dict[str, Any]:
    """``python -m bench.loadgen SPEC`` in its own process; its JSON summary."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench.loadgen", str(spec_file)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"loadgen failed for {spec_file.stem}: {proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout)
    result.pop("url", None)
    return result


def run_cell(
    target: Target,
    image: BenchImage,
    concurrency: int,
    plan: CellPlan,
    work: Path,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """One measurement: wait for an idle machine, run the load generator, add TorchServe's counters."""
    spec_file = write_spec(target, image, concurrency, plan, work)
    busy_before = plan.gate.wait(log)
    load_before = os.getloadavg()[0]
    counters = scrape_torchserve(target.metrics_url) if target.metrics_url else None
    cpu_before = process_cpu.cpu_seconds(target.cpu_roots)
    try:
        result = run_loadgen(spec_file)
    finally:
        spec_file.with_suffix(".body").unlink(missing_ok=True)
    window = result.get("duration_s", 0.0)
    measured_share = window / (window + plan.warmup_s) if window > 0 else 0.0
    cpu_ms = process_cpu.per_request_ms(
        cpu_before, process_cpu.cpu_seconds(target.cpu_roots), result.get("requests", 0), measured_share
    )
    ts = (
        torchserve_breakdown(counters, scrape_torchserve(target.metrics_url))
        if target.metrics_url and counters
        else {}
    )
    return {
        "path": target.path,
        "precision": target.precision,
        "label": target.label,
        "image": image.key,
        "loadavg_1m_before": round(load_before, 2),
        "busy_before": round(busy_before, 3),
        **result,
        "torchserve": ts,
        "cpu_ms_per_request": cpu_ms if target.cpu_roots else {},
    }


def warm_up_server(target: Target, images: list[BenchImage], plan: CellPlan, work: Path) -> None:
    """Untimed closed-loop load at the highest concurrency, every image in turn, before the first cell.

    A fresh server keeps getting faster over its first minute of traffic (TorchServe's frontend is Java,
    whose JIT compiles the hot paths as they run). Without this warm-up the cells measured later, on a
    warmer server, would look faster than the first ones.
    """
    if plan.server_warmup_s <= 0:
        return
    top = max(plan.concurrencies)
    warm_plan = replace(plan, duration_s={top: plan.server_warmup_s / len(images)}, warmup_s=0.0)
    for image in images:
        spec_file = write_spec(target, image, top, warm_plan, work / "server_warmup")
        try:
            run_loadgen(spec_file)
        finally:
            spec_file.with_suffix(".body").unlink(missing_ok=True)


def run_target(
    target: Target, images: list[BenchImage], plan: CellPlan, work: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    """Pre-flight every image, warm the server up, then every image x concurrency cell (small first, c=1
    first)."""
    checks = {image.key: preflight(target, image) for image in images}
    warm_up_server(target, images, plan, work)
    cells = []
    for image in images:
        for c in plan.concurrencies:
            cell = run_cell(target, image, c, plan, work, log)
            log(
                f"  {target.label:<28} {image.key:<5} c={c}: {cell['throughput_rps']:6.2f} img/s  "
                f"p50 {cell['latency_ms']['p50']:7.1f} ms  p99 {cell['latency_ms']['p99']:7.1f} ms  "
                f"errors {cell['errors']}  loadgen cpu {100 * cell['loadgen_cpu_fraction']:.1f}%"
            )
            cells.append(cell)
    return {"preflight": checks, "cells": cells}
