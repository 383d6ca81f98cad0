"""The run's plot, results.png (copied to latest.png): throughput (top) and latency (bottom) per path,
one column per image.

Bars are grouped by path+precision; one bar per concurrency. The model-alone figures (a) are drawn as
horizontal lines on the throughput panels, since they have no per-image or per-concurrency cells.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.checks import find_cell

IMAGES = (("small", "small JPEG (451x300)"), ("12mp", "12 MP JPEG (4000x3000)"))
COLORS = {1: "#7fa7d9", 8: "#1f4e8c"}


def _series(results: dict[str, Any]) -> list[tuple[str, str]]:
    """(path, precision) pairs in first-seen order."""
    seen: list[tuple[str, str]] = []
    for cell in results.get("cells", []):
        key = (cell["path"], cell["precision"])
        if key not in seen:
            seen.append(key)
    return seen


def plot(results: dict[str, Any], out: Path) -> None:
    """Draw and save the figure (Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = _series(results)
    concurrencies = sorted({int(c["concurrency"]) for c in results.get("cells", [])}) or [1, 8]
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5), squeeze=False)
    labels = [f"({p}) {prec}" for p, prec in series]
    width = 0.8 / max(1, len(concurrencies))
    for col, (image, title) in enumerate(IMAGES):
        thr_ax, lat_ax = axes[0][col], axes[1][col]
        latencies: list[float] = []
        for i, c in enumerate(concurrencies):
            xs = [j + (i - (len(concurrencies) - 1) / 2) * width for j in range(len(series))]
            cells = [find_cell(results, *key, image, c) for key in series]
            thr = [cell["throughput_rps"] if cell else 0.0 for cell in cells]
            p50s = [cell["latency_ms"]["p50"] if cell and cell["requests"] else 0.0 for cell in cells]
            p99s = [cell["latency_ms"]["p99"] if cell and cell["requests"] else 0.0 for cell in cells]
            latencies += p50s + p99s
            bars = thr_ax.bar(xs, thr, width, color=COLORS.get(c, "gray"), label=f"{c} client{'s' * (c > 1)}")
            thr_ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=1)
            lat_ax.bar(xs, p50s, width, color=COLORS.get(c, "gray"), label=f"p50, {c} client{'s' * (c > 1)}")
            lat_ax.scatter(
                xs, p99s, marker="_", s=200, color="crimson", zorder=3, label="p99" if i == 0 else None
            )
        _draw_model_alone(thr_ax, results)
        for ax, ylabel in ((thr_ax, "images/s"), (lat_ax, "latency ms")):
            ax.set_xticks(range(len(series)))
            ax.set_xticklabels(labels, fontsize=8)
            ax.set_ylabel(ylabel)
            ax.grid(axis="y", alpha=0.3)
            ax.legend(fontsize=7)
        thr_ax.set_title(f"Throughput, {title}")
        lat_ax.set_title(f"Latency, {title}")
        if any(v > 0 for v in latencies):
            lat_ax.set_yscale("log")
        else:
            for ax in (thr_ax, lat_ax):
                ax.text(0.5, 0.5, "no completed requests", ha="center", va="center", transform=ax.transAxes)
    meta = results.get("meta", {})
    fig.suptitle(
        f"ResNet50 serving on {meta.get('cpu', '?')}, {meta.get('cores', '?')} cores "
        f"({meta.get('mode', '?')} run, {meta.get('started_at', '?')})"
    )
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _draw_model_alone(ax: Any, results: dict[str, Any]) -> None:
    styles = {"fp32": ("--", "dimgray"), "bf16": (":", "darkgreen"), "fast": (":", "darkgreen")}
    for precision, res in results.get("model_alone", {}).items():
        style, color = styles.get(precision, ("-.", "black"))
        ax.axhline(
            res["images_per_s"],
            linestyle=style,
            color=color,
            linewidth=1,
            label=f"(a) model alone {precision}, batch {res['best_batch_size']}",
        )
