"""The targets a run is held to, computed from its own cells: ratios between paths, latency bounds.

Everything compared comes from the same run. A ratio whose inputs are missing (a path that was skipped or
failed) has no value and the verdict "n/a" rather than a guess.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Check:
    """One target line: what was compared, the bound, the measured value and the verdict."""

    name: str
    op: str  # ">=" or "<="
    bound: float | None  # None: informational, no target
    value: float | None
    unit: str = "x"
    unmet: str | None = None  # a condition besides the bound that the run did not meet: MISS, and why

    @property
    def verdict(self) -> str:
        if self.bound is None:
            return "info"
        if self.value is None or math.isnan(self.value):
            return "n/a"
        if self.unmet:
            return "MISS"
        ok = self.value >= self.bound if self.op == ">=" else self.value <= self.bound
        return "PASS" if ok else "MISS"


def find_cell(
    results: dict[str, Any], path: str, precision: str, image: str, c: int
) -> dict[str, Any] | None:
    """The measured cell of ``path`` at ``precision`` for ``image`` at ``c`` clients, if any."""
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
    """Images/s of a cell; for (a), the model alone, its best batch size (it has no images or clients)."""
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
# each side (path, precision, image). (a) has one figure per runtime and precision: its best batch size
# ("fp32", "bf16", "onnxruntime fp32", "openvino bf16").
RATIO_CHECKS: list[tuple[str, float | None, tuple[str, str, str], tuple[str, str, str]]] = [
    ("(d)/(b) small JPEG, c=8, fp32", 2.0, ("d", "fp32", "small"), ("b", "fp32", "small")),
    ("(d)/(b) 12 MP JPEG, c=8, fp32", 3.0, ("d", "fp32", "12mp"), ("b", "fp32", "12mp")),
    ("(d) fast/(a) OpenVINO bf16, small JPEG, c=8", 0.8, ("d", "fast", "small"), ("a", "openvino bf16", "")),
    ("(d) fast/(b) small JPEG, c=8", None, ("d", "fast", "small"), ("b", "fp32", "small")),
    ("(d)/(a) small JPEG, c=8, fp32", None, ("d", "fp32", "small"), ("a", "fp32", "")),
    ("(d) fast/fp32 small JPEG, c=8", None, ("d", "fast", "small"), ("d", "fp32", "small")),
    ("(d) fast/fp32 12 MP JPEG, c=8", None, ("d", "fast", "12mp"), ("d", "fp32", "12mp")),
    ("(d) fast/(a) PyTorch bf16 small JPEG, c=8", None, ("d", "fast", "small"), ("a", "bf16", "")),
    ("(c)/(b) small JPEG, c=8, fp32", None, ("c", "fp32", "small"), ("b", "fp32", "small")),
    ("(c)/(b) 12 MP JPEG, c=8, fp32", None, ("c", "fp32", "12mp"), ("b", "fp32", "12mp")),
    ("(d)/(c) small JPEG, c=8, fp32, from the cells", None, ("d", "fp32", "small"), ("c", "fp32", "small")),
    ("(d)/(c) 12 MP JPEG, c=8, fp32, from the cells", None, ("d", "fp32", "12mp"), ("c", "fp32", "12mp")),
    ("(a) bf16/fp32, model alone", None, ("a", "bf16", ""), ("a", "fp32", "")),
    # How far (d)/(b) can go in fp32: the fastest fp32 runtime, model alone, no decode, API or server.
    (
        "(a) ONNX Runtime fp32/(b) small JPEG, c=8",
        None,
        ("a", "onnxruntime fp32", ""),
        ("b", "fp32", "small"),
    ),
    ("(a) OpenVINO bf16/PyTorch bf16, model alone", None, ("a", "openvino bf16", ""), ("a", "bf16", "")),
]
# The full stack against TorchServe direct, from alternating runs on the same server (``paired_ratio``).
PAIRED_RATIO_BOUND = 0.9
API_LATENCY_BOUND_MS = 5.0
CLI_RATIO_BOUND = 0.9  # mlsvc classify on a folder, against (d) at the same concurrency
STATS_BOUND_MS = 100.0
WARM_START_BOUND_S = 60.0  # warm `make run` to the first /forward answer (bench.warm_start)
# The first /forward's latency against the median of the next ones: above, the first call paid for a compile.
WARM_FIRST_CALL_RATIO = 1.5


def warm_start_unmet(warm: dict[str, Any]) -> str | None:
    """Why the warm start's first answer was not at compiled speed, or None: the workers' load lines must
    say the compiled package serves ("... AOT") and the first latency be near the next ones'."""
    served = str(warm.get("served_as", "unknown"))
    if not served.endswith("AOT") or "," in served:
        return f"served as {served}, not the compiled package alone"
    first, median = warm.get("first_ms"), warm.get("next_median_ms")
    if not first or not median:
        return "no latencies recorded"
    if first > WARM_FIRST_CALL_RATIO * median:
        return f"first answer {first:.0f} ms, {first / median:.1f}x the median of the next ones"
    return None


def warm_start_check(results: dict[str, Any]) -> Check:
    """Warm `make run`: seconds to the first /forward answer, which must come at compiled speed."""
    warm = results.get("warm_start") or {}
    return Check(
        f"warm make run: first /forward (compiled) within {WARM_START_BOUND_S:g} s",
        "<=",
        WARM_START_BOUND_S,
        warm.get("seconds_to_first_answer"),
        "s",
        warm_start_unmet(warm) if warm else None,
    )


def checks(results: dict[str, Any]) -> list[Check]:
    """The targets (and a few informative ratios), computed from this run's cells."""
    out = [
        Check(name, ">=", bound, _ratio(throughput(results, *num, 8), throughput(results, *den, 8)))
        for name, bound, num, den in RATIO_CHECKS
    ]
    for precision, label in (("fp32", "fp32"), ("fast", "fast")):
        for image, name in (("small", "small JPEG"), ("12mp", "12 MP JPEG")):
            paired = results.get("paired_ratio", {}).get(precision, {}).get(image, {}).get("median_ratio")
            out.append(Check(f"(d)/(c) {name}, c=8, {label}, paired runs", ">=", PAIRED_RATIO_BOUND, paired))
    cli = results.get("cli", {})
    cli_rate = float(cli["images_per_s"]) if cli.get("images_per_s") else None
    out.append(
        Check(
            f"(e) mlsvc/(d) small JPEG, {cli.get('images', 200)}-image folder, c=8, fp32",
            ">=",
            CLI_RATIO_BOUND,
            _ratio(cli_rate, throughput(results, "d", "fp32", "small", 8)),
        )
    )
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
        for bucket, span in (("1m", "60 minutes"), ("1h", "48 hours"), ("1d", "30 days")):
            series = stats.get(f"timeseries_{bucket}", {}).get("median_ms")
            name = f"GET /stats/timeseries?bucket={bucket}, {backend}, {rows}, {span}"
            out.append(Check(name, "<=", STATS_BOUND_MS, series, "ms"))
    out.append(warm_start_check(results))
    return out


def finalize(results: dict[str, Any]) -> dict[str, Any]:
    """Attach the computed checks (as plain dicts) so results.json carries the verdicts too."""
    items = checks(results)
    results["checks"] = [asdict(c) for c in items]
    for c, d in zip(items, results["checks"], strict=True):
        d["verdict"] = c.verdict
    return results
