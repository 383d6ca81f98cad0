"""Turn one bench run's raw results into the ratios vs the issue-5 targets, a Markdown report, JSON and a PNG.

Everything compared comes from the same run. A ratio whose inputs are missing (a path that was skipped or
failed) is reported as "n/a" rather than guessed.

Run alone to re-render an existing run: ``python -m bench.report bench/results/results.json``.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

PATH_LABELS = {
    "a": "(a) model alone",
    "b": "(b) stock image_classifier",
    "c": "(c) our handler, TorchServe",
    "d": "(d) full stack, control API",
}


@dataclass
class Check:
    """One target line: what was compared, the bound, the measured value and the verdict."""

    name: str
    op: str  # ">=" or "<="
    bound: float | None  # None: informational, no target
    value: float | None
    unit: str = "x"

    @property
    def verdict(self) -> str:
        if self.bound is None:
            return "info"
        if self.value is None or math.isnan(self.value):
            return "n/a"
        ok = self.value >= self.bound if self.op == ">=" else self.value <= self.bound
        return "PASS" if ok else "MISS"


def find_cell(
    results: dict[str, Any], path: str, precision: str, image: str, c: int
) -> dict[str, Any] | None:
    for cell in results.get("cells", []):
        if (cell["path"], cell["precision"], cell["image"], cell["concurrency"]) == (
            path,
            precision,
            image,
            c,
        ):
            return dict(cell)
    return None


def throughput(results: dict[str, Any], path: str, precision: str, image: str, c: int) -> float | None:
    if path == "a":
        alone = results.get("model_alone", {}).get(precision)
        return float(alone["images_per_s"]) if alone else None
    cell = find_cell(results, path, precision, image, c)
    return float(cell["throughput_rps"]) if cell and cell["requests"] else None


def p50(results: dict[str, Any], path: str, precision: str, image: str, c: int) -> float | None:
    cell = find_cell(results, path, precision, image, c)
    return float(cell["latency_ms"]["p50"]) if cell and cell["requests"] else None


def _ratio(num: float | None, den: float | None) -> float | None:
    return num / den if num is not None and den else None


def _diff(a: float | None, b: float | None) -> float | None:
    return a - b if a is not None and b is not None else None


# Throughput ratios at 8 clients: (name, bound or None for information only, numerator, denominator),
# each side (path, precision, image). (a) has one figure per precision: its best batch size.
RATIO_CHECKS: list[tuple[str, float | None, tuple[str, str, str], tuple[str, str, str]]] = [
    ("(d)/(b) small JPEG, c=8, fp32", 1.5, ("d", "fp32", "small"), ("b", "fp32", "small")),
    ("(d)/(b) 12 MP JPEG, c=8, fp32", 3.0, ("d", "fp32", "12mp"), ("b", "fp32", "12mp")),
    ("(d) fast/(b) small JPEG, c=8", 2.5, ("d", "bf16", "small"), ("b", "fp32", "small")),
    ("(d)/(a) small JPEG, c=8, fp32", 1.0, ("d", "fp32", "small"), ("a", "fp32", "")),
    ("(d) fast/fp32 small JPEG, c=8", 1.8, ("d", "bf16", "small"), ("d", "fp32", "small")),
    ("(d) fast/fp32 12 MP JPEG, c=8", None, ("d", "bf16", "12mp"), ("d", "fp32", "12mp")),
    ("(d) fast/(a) bf16 small JPEG, c=8", None, ("d", "bf16", "small"), ("a", "bf16", "")),
    ("(c)/(b) small JPEG, c=8, fp32", None, ("c", "fp32", "small"), ("b", "fp32", "small")),
    ("(c)/(b) 12 MP JPEG, c=8, fp32", None, ("c", "fp32", "12mp"), ("b", "fp32", "12mp")),
    ("(d)/(c) small JPEG, c=8, fp32", None, ("d", "fp32", "small"), ("c", "fp32", "small")),
    ("(a) bf16/fp32, model alone", None, ("a", "bf16", ""), ("a", "fp32", "")),
]
API_LATENCY_BOUND_MS = 5.0
STATS_BOUND_MS = 100.0


def checks(results: dict[str, Any]) -> list[Check]:
    """The issue-5 targets (and a few informative ratios), computed from this run's cells."""
    out = [
        Check(name, ">=", bound, _ratio(throughput(results, *num, 8), throughput(results, *den, 8)))
        for name, bound, num, den in RATIO_CHECKS
    ]
    paired = results.get("api_added", {}).get("median_diff_ms")
    out.append(
        Check("API-added p50, (d)-(c), small, c=1, paired runs", "<=", API_LATENCY_BOUND_MS, paired, "ms")
    )
    for image in ("small", "12mp"):
        added = _diff(p50(results, "d", "fp32", image, 1), p50(results, "c", "fp32", image, 1))
        out.append(Check(f"API-added p50, (d)-(c), {image}, c=1, from the cells", "<=", None, added, "ms"))
    for backend, stats in results.get("stats", {}).items():
        if not isinstance(stats, dict) or "median_ms" not in stats:
            continue
        rows = f"{stats.get('rows', 0):,} rows"
        out.append(
            Check(f"GET /stats, {backend}, {rows}, all time", "<=", STATS_BOUND_MS, stats["median_ms"], "ms")
        )
        window = stats.get("window_7d", {}).get("median_ms")
        out.append(Check(f"GET /stats, {backend}, {rows}, 7-day window", "<=", STATS_BOUND_MS, window, "ms"))
    return out


def _fmt(v: float | None, digits: int = 2) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _bound(c: Check) -> str:
    return "—" if c.bound is None else f"{c.op} {c.bound:g} {c.unit}".replace(" x", "x")


def checks_table(items: list[Check]) -> str:
    lines = ["| Target | Required | Measured | Verdict |", "|---|---|---|---|"]
    for c in items:
        measured = f"{_fmt(c.value)} {c.unit}".replace(" x", "x") if c.value is not None else "n/a"
        lines.append(f"| {c.name} | {_bound(c)} | {measured} | {c.verdict} |")
    return "\n".join(lines)


def cells_table(results: dict[str, Any]) -> str:
    lines = [
        "| Path | Precision | Image | Clients | images/s | p50 ms | p95 ms | p99 ms | Errors | Loadgen CPU "
        "| Cores busy before / during |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cell in results.get("cells", []):
        lat = cell["latency_ms"]
        lines.append(
            f"| {PATH_LABELS.get(cell['path'], cell['path'])} | {cell['precision']} | {cell['image']} | "
            f"{cell['concurrency']} | {cell['throughput_rps']:.2f} | {_fmt(lat['p50'], 1)} | "
            f"{_fmt(lat['p95'], 1)} | {_fmt(lat['p99'], 1)} | {cell['errors']} | "
            f"{100 * cell['loadgen_cpu_fraction']:.1f}% | "
            f"{_pct(cell.get('busy_before'))} / {_pct(cell.get('system_cpu_busy'))} |"
        )
    return "\n".join(lines)


def breakdown_table(results: dict[str, Any]) -> str:
    """Per cell: client latency vs TorchServe's queue and worker time, the handler's own stages, the API's."""
    lines = [
        "| Path | Precision | Image | Clients | client mean ms | TS queue ms | TS worker ms "
        "| handler preprocess ms | handler inference ms (batch) | API processing ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cell in results.get("cells", []):
        ts = cell.get("torchserve") or {}
        fields = cell.get("server_fields_mean") or {}
        values = [
            cell["latency_ms"]["mean"],
            ts.get("queue_ms_mean"),
            ts.get("inference_ms_mean"),
            fields.get("timings_ms.preprocess"),
            fields.get("timings_ms.inference"),
            fields.get("processing_time_ms"),
        ]
        lines.append(
            f"| {PATH_LABELS.get(cell['path'], cell['path'])} | {cell['precision']} | {cell['image']} | "
            f"{cell['concurrency']} | " + " | ".join(_fmt(v, 1) for v in values) + " |"
        )
    return "\n".join(lines)


def servers_lines(results: dict[str, Any]) -> list[str]:
    """What each path ran with (TorchServe's model description, the API's gunicorn settings)."""
    lines = []
    for key, desc in results.get("servers", {}).items():
        lines.append(f"- {key}: " + ", ".join(f"{k}={v}" for k, v in desc.items()))
    return lines


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
    lines = ["| Precision | " + " | ".join(f"batch {r['batch_size']}" for r in _first(alone)) + " | Best |"]
    lines.append("|---" * (len(_first(alone)) + 2) + "|")
    for precision, res in alone.items():
        cells = " | ".join(f"{r['images_per_s']:.2f}" for r in res["by_batch_size"])
        lines.append(
            f"| {precision} | {cells} | {res['images_per_s']:.2f} (batch {res['best_batch_size']}) |"
        )
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


def markdown(results: dict[str, Any]) -> str:
    """The whole report as Markdown."""
    meta = results.get("meta", {})
    parts = [
        f"## Bench results ({meta.get('started_at', '?')}, {meta.get('mode', '?')} run)",
        f"`{meta.get('command', 'python -m bench')}` on {meta.get('cpu', '?')}, {meta.get('cores', '?')} "
        f"cores; torch {meta.get('torch', '?')}, TorchServe {meta.get('torchserve', '?')}. "
        f"Random seeded weights. Load: {meta.get('clients_note', '')}",
        "### Targets (issue 5)",
        checks_table(checks(results)),
        "### Throughput and latency",
        cells_table(results),
    ]
    for title, table in (
        (
            "### Where the time goes (means per request; TS = TorchServe counters over the cell)",
            breakdown_table(results),
        ),
        ("### (a) Model alone: eager `model(x)`, images/s by batch size", model_alone_table(results)),
        ("### Decode + resize micro-bench (handler's pure functions)", decode_table(results)),
        ("### GET /stats at scale", stats_table(results)),
    ):
        if table:
            parts += [title, table]
    servers = servers_lines(results)
    if servers:
        parts += ["### Server settings", "\n".join(servers)]
    sanity = sanity_lines(results)
    if sanity:
        parts += ["### Sanity: pre-flight top-1 per path (same seeded weights)", "\n".join(sanity)]
    if results.get("errors"):
        parts += ["### Problems during the run", "\n".join(f"- {e}" for e in results["errors"])]
    return "\n\n".join(parts) + "\n"


def finalize(results: dict[str, Any]) -> dict[str, Any]:
    """Attach the computed checks (as plain dicts) so results.json carries the verdicts too."""
    items = checks(results)
    results["checks"] = [asdict(c) for c in items]
    for c, d in zip(items, results["checks"], strict=True):
        d["verdict"] = c.verdict
    return results


def write_all(results: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write results.json, results.md and results.png; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    finalize(results)
    paths = {"json": out_dir / "results.json", "md": out_dir / "results.md", "png": out_dir / "results.png"}
    paths["json"].write_text(json.dumps(results, indent=1, default=str))
    paths["md"].write_text(markdown(results))
    from bench.plot import plot

    plot(results, paths["png"])
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", type=Path, help="results.json of a previous run")
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text())
    paths = write_all(results, args.results.parent)
    print(paths["md"].read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
