"""Markdown tables and lists of one run's results, for the reports (``bench.report``).

Each function takes the whole results dict and returns Markdown, or "" / [] when the run has nothing
for it (a step skipped or failed).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from bench.checks import Check

PATH_LABELS = {
    "a": "(a) model alone",
    "b": "(b) stock image_classifier",
    "c": "(c) our handler, TorchServe",
    "d": "(d) full stack, control API",
}


def _fmt(v: float | None, digits: int = 2) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _bound(c: Check) -> str:
    return "—" if c.bound is None else f"{c.op} {c.bound:g} {c.unit}".replace(" x", "x")


def checks_table(items: list[Check]) -> str:
    lines = ["| Target | Required | Measured | Verdict |", "|---|---|---|---|"]
    for c in items:
        measured = f"{_fmt(c.value)} {c.unit}".replace(" x", "x") if c.value is not None else "n/a"
        why = f": {c.unmet}" if c.unmet and c.verdict == "MISS" else ""
        lines.append(f"| {c.name} | {_bound(c)} | {measured} | {c.verdict}{why} |")
    return "\n".join(lines)


CELL_KEY = ("Path", "Precision", "Image", "Clients")


def _cell_table(
    results: dict[str, Any], columns: list[str], values: Callable[[dict[str, Any]], list[str]]
) -> str:
    """One row per cell: the cell's key, then ``values(cell)`` under ``columns``; "" without cells."""
    cells = results.get("cells", [])
    if not cells:
        return ""
    header = [*CELL_KEY, *columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for cell in cells:
        key = [
            PATH_LABELS.get(cell["path"], cell["path"]),
            cell["precision"],
            cell["image"],
            str(cell["concurrency"]),
        ]
        lines.append("| " + " | ".join([*key, *values(cell)]) + " |")
    return "\n".join(lines)


def cells_table(results: dict[str, Any]) -> str:
    """Throughput, latency, errors and machine load of every cell."""

    def values(cell: dict[str, Any]) -> list[str]:
        lat = cell["latency_ms"]
        return [
            f"{cell['throughput_rps']:.2f}",
            *(_fmt(lat[p], 1) for p in ("p50", "p95", "p99")),
            str(cell["errors"]),
            f"{100 * cell['loadgen_cpu_fraction']:.1f}%",
            f"{_pct(cell.get('busy_before'))} / {_pct(cell.get('system_cpu_busy'))}",
        ]

    columns = [
        "images/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "Errors",
        "Loadgen CPU",
        "Cores busy before / during",
    ]
    return _cell_table(results, columns, values)


def breakdown_table(results: dict[str, Any]) -> str:
    """Per cell: client latency vs TorchServe's queue and worker time, the handler's own stages, the API's."""

    def values(cell: dict[str, Any]) -> list[str]:
        ts = cell.get("torchserve") or {}
        fields = cell.get("server_fields_mean") or {}
        means = [
            cell["latency_ms"]["mean"],
            ts.get("queue_ms_mean"),
            ts.get("inference_ms_mean"),
            fields.get("timings_ms.preprocess"),
            fields.get("timings_ms.inference"),
            fields.get("processing_time_ms"),
        ]
        return [_fmt(v, 1) for v in means]

    columns = [
        "client mean ms",
        "TS queue ms",
        "TS worker ms",
        "handler preprocess ms",
        "handler inference ms (batch)",
        "API processing ms",
    ]
    return _cell_table(results, columns, values)


def cpu_table(results: dict[str, Any]) -> str:
    """Per cell: CPU-ms per request of each process group (the API, TorchServe's frontend, its workers)."""
    if not any(cell.get("cpu_ms_per_request") for cell in results.get("cells", [])):
        return ""

    def values(cell: dict[str, Any]) -> list[str]:
        cpu = cell.get("cpu_ms_per_request") or {}
        groups = [cpu.get(group) for group in ("api", "frontend", "workers")]
        total = sum(v for v in groups if v is not None) if cpu else None
        return [_fmt(v, 1) for v in (*groups, total)]

    return _cell_table(results, ["API", "TS frontend", "TS workers", "all"], values)


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.0f}%"


def top1(response: Any) -> str | None:
    """Top-1 label of a stock ({label: prob}) or our ({"predictions": [...]}) response."""
    if (
        isinstance(response, dict)
        and isinstance(response.get("predictions"), list)
        and response["predictions"]
    ):
        return str(response["predictions"][0].get("label"))
    if isinstance(response, dict) and response and all(isinstance(v, float) for v in response.values()):
        return str(max(response, key=lambda k: response[k]))
    return None


def sanity_lines(results: dict[str, Any]) -> list[str]:
    """Same seeded weights everywhere: every path should name the same top-1 class for an image."""
    lines = []
    for image in ("small", "12mp"):
        labels = {
            key: top1(checks.get(image, {}).get("response"))
            for key, checks in results.get("preflight", {}).items()
        }
        labels = {k: v for k, v in labels.items() if v is not None}
        if labels:
            same = "same" if len(set(labels.values())) == 1 else "DIFFERENT"
            lines.append(
                f"- {image}: top-1 {same} across paths: " + ", ".join(f"{k} {v!r}" for k, v in labels.items())
            )
    return lines


def model_alone_table(results: dict[str, Any]) -> str:
    alone = results.get("model_alone", {})
    if not alone:
        return ""
    lines = ["| Runtime | " + " | ".join(f"batch {r['batch_size']}" for r in _first(alone)) + " | Best |"]
    lines.append("|---" * (len(_first(alone)) + 2) + "|")
    for key, res in alone.items():
        cells = " | ".join(f"{r['images_per_s']:.2f}" for r in res["by_batch_size"])
        name = key if " " in key else f"PyTorch {key}"
        used = res.get("precision_used")
        if used and used != res.get("precision"):
            name += f" (ran {used})"
        lines.append(f"| {name} | {cells} | {res['images_per_s']:.2f} (batch {res['best_batch_size']}) |")
    return "\n".join(lines)


def _first(alone: dict[str, Any]) -> list[dict[str, Any]]:
    return list(next(iter(alone.values()))["by_batch_size"])


def decode_table(results: dict[str, Any]) -> str:
    decode = results.get("decode")
    if not decode or "rows" not in decode:
        return ""
    lines = ["| 12 MP JPEG to model input | median ms | min ms |", "|---|---|---|"]
    for row in decode["rows"]:
        lines.append(f"| {row['name']} | {row['median_ms']:.1f} | {row['min_ms']:.1f} |")
    return "\n".join(lines)


def stats_table(results: dict[str, Any]) -> str:
    stats = results.get("stats", {})
    if not stats:
        return ""
    lines = [
        "| Backend | Rows | Seed s | GET /stats median ms | min ms | max ms |",
        "|---|---|---|---|---|---|",
    ]
    for backend, s in stats.items():
        if "median_ms" not in s:
            lines.append(f"| {backend} | — | — | {s.get('error', 'skipped')} | | |")
            continue
        lines.append(
            f"| {backend} | {s['rows']:,} | {s['seed_s']:.1f} | {s['median_ms']:.1f} | "
            f"{s['min_ms']:.1f} | {s['max_ms']:.1f} |"
        )
    return "\n".join(lines)


def servers_lines(results: dict[str, Any]) -> list[str]:
    """What each path ran with (TorchServe's model description, the API's gunicorn settings)."""
    lines = []
    for key, desc in results.get("servers", {}).items():
        lines.append(f"- {key}: " + ", ".join(f"{k}={v}" for k, v in desc.items()))
    return lines
