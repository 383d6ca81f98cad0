"""Closed-loop HTTP load generator: N threads, keep-alive connections, pre-encoded bodies.

It runs as its own process (``python -m bench.loadgen SPEC.json``) and imports only the standard library, so
it starts fast and uses little CPU next to the server it measures on the same two cores. Each thread keeps one
``http.client`` connection open and sends the same pre-encoded body in a loop. The measured window is the
``duration`` seconds after the warm-up; throughput is the number of successful responses that complete inside
the window over its length, and their latencies are the ones reported. The generator's own CPU time
(``resource.getrusage``) over the window is reported so its share of the two cores can be shown to be small.

Output (stdout): one JSON object, see :func:`summarize`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import resource
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ERROR_SAMPLE_LIMIT = 3


@dataclass
class LoadSpec:
    """What to send, and for how long. ``body_file`` holds the exact request body (pre-encoded)."""

    url: str
    body_file: str
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "POST"
    concurrency: int = 1
    duration_s: float = 10.0
    warmup_s: float = 3.0
    timeout_s: float = 120.0
    # Numeric fields to average over the measured responses (dotted paths into the JSON body), e.g. the
    # handler's "timings_ms.preprocess": they show where the server's time goes at no extra cost.
    fields: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, path: Path) -> LoadSpec:
        return cls(**json.loads(path.read_text()))


@dataclass
class ThreadResult:
    """What one client thread saw inside the measured window."""

    latencies_s: list[float] = field(default_factory=list)
    field_sums: dict[str, float] = field(default_factory=dict)
    field_counts: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    def add_fields(self, body: bytes, paths: list[str]) -> None:
        try:
            doc = json.loads(body)
        except ValueError:
            return
        for path in paths:
            value = _dig(doc, path)
            if isinstance(value, int | float):
                self.field_sums[path] = self.field_sums.get(path, 0.0) + float(value)
                self.field_counts[path] = self.field_counts.get(path, 0) + 1

    def add_error(self, what: str) -> None:
        self.errors += 1
        if len(self.error_samples) < ERROR_SAMPLE_LIMIT:
            self.error_samples.append(what[:300])


def _dig(doc: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def _connect(url: str, timeout: float) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    return http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)


def _request_path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _one_request(
    conn: http.client.HTTPConnection, spec: LoadSpec, path: str, body: bytes
) -> tuple[int, bytes, bool]:
    """Send one request; return (status, body, server wants close)."""
    conn.request(spec.method, path, body=body, headers=spec.headers)
    resp = conn.getresponse()
    data = resp.read()  # read fully so the connection can be reused
    return resp.status, data, resp.will_close


def _client_loop(spec: LoadSpec, body: bytes, window: tuple[float, float], out: ThreadResult) -> None:
    """Send requests back-to-back until the window closes; record those that complete inside it.

    Counting by completion time (not start time) keeps throughput unbiased at both window edges.
    """
    path = _request_path(spec.url)
    conn = _connect(spec.url, spec.timeout_s)
    start_at, end_at = window
    while time.perf_counter() < end_at:
        t0 = time.perf_counter()
        try:
            status, data, will_close = _one_request(conn, spec, path, body)
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            conn = _connect(spec.url, spec.timeout_s)
            if start_at <= time.perf_counter() <= end_at:
                out.add_error(f"{type(exc).__name__}: {exc}")
            continue
        t1 = time.perf_counter()
        if will_close:
            conn.close()
            conn = _connect(spec.url, spec.timeout_s)
        if not start_at <= t1 <= end_at:
            continue
        if 200 <= status < 300:
            out.latencies_s.append(t1 - t0)
            if spec.fields:
                out.add_fields(data, spec.fields)
        else:
            out.add_error(f"HTTP {status}: {data[:200]!r}")
    conn.close()


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an already sorted list; NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def proc_stat_busy() -> tuple[float, float]:
    """(busy, total) jiffies over all CPUs from /proc/stat; (0, 0) where there is none."""
    try:
        with open("/proc/stat") as f:
            fields = [float(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def summarize(
    spec: LoadSpec, results: list[ThreadResult], window_s: float, cpu_s: float, busy: float | None = None
) -> dict[str, Any]:
    """Merge per-thread results into the JSON the harness reads."""
    lat = sorted(v for r in results for v in r.latencies_s)
    ms = [v * 1000.0 for v in lat]
    samples = [s for r in results for s in r.error_samples][:ERROR_SAMPLE_LIMIT]
    field_means = {}
    for path in spec.fields:
        n = sum(r.field_counts.get(path, 0) for r in results)
        if n:
            field_means[path] = sum(r.field_sums.get(path, 0.0) for r in results) / n
    return {
        "url": spec.url,
        "concurrency": spec.concurrency,
        "duration_s": round(window_s, 3),
        "warmup_s": spec.warmup_s,
        "requests": len(lat),
        "errors": sum(r.errors for r in results),
        "error_samples": samples,
        "throughput_rps": len(lat) / window_s if window_s > 0 else 0.0,
        "latency_ms": {
            "mean": sum(ms) / len(ms) if ms else math.nan,
            "p50": percentile(ms, 50),
            "p95": percentile(ms, 95),
            "p99": percentile(ms, 99),
            "max": ms[-1] if ms else math.nan,
        },
        "server_fields_mean": field_means,
        "loadgen_cpu_s": round(cpu_s, 3),
        # Share of ONE core the generator used during the window (2 cores in all on the bench box).
        "loadgen_cpu_fraction": round(cpu_s / window_s, 4) if window_s > 0 else 0.0,
        # Whole-machine CPU busy share (all cores) in the window: shows whether the server saturated them.
        "system_cpu_busy": None if busy is None else round(busy, 4),
        "body_bytes": Path(spec.body_file).stat().st_size,
    }


def run_load(spec: LoadSpec) -> dict[str, Any]:
    """Run the closed loop described by ``spec`` and return the summary."""
    body = Path(spec.body_file).read_bytes()
    start_at = time.perf_counter() + spec.warmup_s
    end_at = start_at + spec.duration_s
    results = [ThreadResult() for _ in range(spec.concurrency)]
    threads = [
        threading.Thread(target=_client_loop, args=(spec, body, (start_at, end_at), r), daemon=True)
        for r in results
    ]
    for t in threads:
        t.start()
    time.sleep(max(0.0, start_at - time.perf_counter()))
    cpu0, stat0 = _cpu_seconds(), proc_stat_busy()
    time.sleep(max(0.0, end_at - time.perf_counter()))
    cpu1, stat1 = _cpu_seconds(), proc_stat_busy()
    for t in threads:
        t.join(spec.timeout_s + 5.0)
    total = stat1[1] - stat0[1]
    busy = (stat1[0] - stat0[0]) / total if total > 0 else None
    return summarize(spec, results, spec.duration_s, cpu1 - cpu0, busy)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("spec", type=Path, help="JSON file with the LoadSpec fields")
    args = parser.parse_args(argv)
    json.dump(run_load(LoadSpec.from_json(args.spec)), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
