"""The soak's verdicts, tables and plot, from what bench/soak.py recorded.

``raw``: ``calls`` [(start s, kind, status or 0 for no answer, latency s)], ``samples`` [{t, api_rss_mb,
api_fds, ts_rss_mb, ts_fds}], ``history_rows`` (rows written during the soak) and ``meta``.

Verdicts:
- memory: resident memory of the API (gunicorn, all processes) and of TorchServe (frontend and workers),
  the mean over the last minute against the mean over the first minute after warm-up: under 10 % growth;
- history: the answered /forward calls equal the history rows written, exactly.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

MAX_GROWTH_PCT = 10.0
GROUPS = (("api", "API (gunicorn)"), ("ts", "TorchServe"))


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0-100) of ``values``; nan when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


def per_minute(calls: list[tuple[float, str, int, float]]) -> list[dict[str, Any]]:
    """For each minute of the run: calls, answered, errors (no answer or 5xx), p50 and p99 latency (ms)."""
    minutes: dict[int, list[tuple[float, str, int, float]]] = {}
    for call in calls:
        minutes.setdefault(int(call[0] // 60), []).append(call)
    rows = []
    for minute in sorted(minutes):
        batch = minutes[minute]
        answered = [c[3] * 1000.0 for c in batch if c[2]]
        rows.append(
            {
                "minute": minute + 1,
                "calls": len(batch),
                "answered": len(answered),
                "errors": sum(1 for c in batch if c[2] == 0 or c[2] >= 500),
                "p50_ms": percentile(answered, 50),
                "p99_ms": percentile(answered, 99),
            }
        )
    return rows


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def growth(samples: list[dict[str, float]], key: str, warmup_s: float) -> dict[str, float]:
    """``key``'s mean over the first minute after warm-up and over the last minute, and the growth (%)."""
    after = [s for s in samples if s["t"] >= warmup_s]
    if not after:
        return {"start": math.nan, "end": math.nan, "growth_pct": math.nan}
    first_end, last_start = after[0]["t"] + 60.0, after[-1]["t"] - 60.0
    start = _mean([s[key] for s in after if s["t"] <= first_end])
    end = _mean([s[key] for s in after if s["t"] >= last_start])
    return {"start": start, "end": end, "growth_pct": (end - start) / start * 100.0 if start else math.nan}


def build(raw: dict[str, Any]) -> dict[str, Any]:
    calls, samples = raw["calls"], raw["samples"]
    warmup_s = float(raw["meta"].get("warmup_minutes", 3.0)) * 60.0
    memory = {group: growth(samples, f"{group}_rss_mb", warmup_s) for group, _ in GROUPS}
    fds = {group: growth(samples, f"{group}_fds", warmup_s) for group, _ in GROUPS}
    forwards = [c for c in calls if c[1] == "forward"]
    answered_forwards = sum(1 for c in forwards if c[2])
    memory_ok = all(m["growth_pct"] < MAX_GROWTH_PCT for m in memory.values())
    history_ok = answered_forwards == raw["history_rows"]
    return {
        "minutes": per_minute(calls),
        "memory": memory,
        "fds": fds,
        "calls": len(calls),
        "answered": sum(1 for c in calls if c[2]),
        "forward_answered": answered_forwards,
        "history_rows": raw["history_rows"],
        "status_counts": _status_counts(calls),
        "memory_ok": memory_ok,
        "history_ok": history_ok,
        "passed": memory_ok and history_ok,
    }


def _status_counts(calls: list[tuple[float, str, int, float]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, kind, status, _ in calls:
        key = f"{kind} {status or 'no answer'}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def _loads(meta: dict[str, Any]) -> str:
    parts = []
    for key, when in (("loadavg_at_start", "at the start"), ("loadavg_at_end", "at the end")):
        if meta.get(key):
            parts.append(f"{' / '.join(f'{x:.1f}' for x in meta[key])} {when}")
    return "; ".join(parts) or "not recorded"


def _ok(flag: bool) -> str:
    return "PASS" if flag else "FAIL"


def markdown(raw: dict[str, Any], report: dict[str, Any]) -> str:
    meta = raw["meta"]
    lines = [
        f"# Soak: {meta['minutes']:g} minutes at {meta['load'] * 100:.0f} % of capacity",
        "",
        f"Ran {meta['started_at']} to {meta.get('finished_at', '?')} on {meta.get('cpu', 'unknown CPU')}, "
        f"{meta.get('cores', '?')} CPUs "
        f"(load average {_loads(meta)}). "
        f"Capacity (closed loop, the same mix): {meta['capacity_per_s']:.1f} calls/s; soak rate "
        f"{meta['rate_per_s']:.1f} calls/s, open loop. Mix: "
        + ", ".join(f"{k} {v * 100:.0f} %" for k, v in meta["mix"].items())
        + f". Warm-up: the first {meta['warmup_minutes']:g} minutes.",
        "",
        f"- Memory growth after warm-up under {MAX_GROWTH_PCT:g} %: **{_ok(report['memory_ok'])}**",
    ]
    for group, label in GROUPS:
        m, f = report["memory"][group], report["fds"][group]
        lines.append(
            f"  - {label}: RSS {m['start']:.0f} -> {m['end']:.0f} MB ({m['growth_pct']:+.1f} %); "
            f"open fds {f['start']:.0f} -> {f['end']:.0f}"
        )
    lines += [
        f"- History rows = answered /forward calls: **{_ok(report['history_ok'])}** "
        f"({report['history_rows']} rows, {report['forward_answered']} answered)",
        f"- Calls: {report['calls']}, answered {report['answered']}; by endpoint and status: "
        + ", ".join(f"{k}: {v}" for k, v in report["status_counts"].items()),
        "",
        "| minute | calls | answered | errors | p50 ms | p99 ms |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in report["minutes"]:
        lines.append(
            f"| {row['minute']} | {row['calls']} | {row['answered']} | {row['errors']} | "
            f"{row['p50_ms']:.0f} | {row['p99_ms']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def plot(raw: dict[str, Any], report: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = raw["samples"]
    minutes = [s["t"] / 60.0 for s in samples]
    fig, (mem, fds, lat) = plt.subplots(3, 1, figsize=(9, 10), sharex=True)
    for group, label in GROUPS:
        mem.plot(minutes, [s[f"{group}_rss_mb"] for s in samples], label=label)
        fds.plot(minutes, [s[f"{group}_fds"] for s in samples], label=label)
    rows = report["minutes"]
    lat.plot([r["minute"] - 0.5 for r in rows], [r["p50_ms"] for r in rows], marker="o", label="p50")
    lat.plot([r["minute"] - 0.5 for r in rows], [r["p99_ms"] for r in rows], marker="o", label="p99")
    warmup = float(raw["meta"].get("warmup_minutes", 3.0))
    for ax, title in ((mem, "resident memory (MB)"), (fds, "open file descriptors"), (lat, "latency (ms)")):
        ax.axvline(warmup, color="grey", linestyle=":", label="end of warm-up")
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    mem.set_ylim(bottom=0)
    lat.set_xlabel("minutes")
    fig.suptitle(f"Soak: {raw['meta']['rate_per_s']:.1f} calls/s for {raw['meta']['minutes']:g} min")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def write(raw: dict[str, Any], report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / name for name in ("soak.json", "soak.md", "soak.png")}
    summary = {"meta": raw["meta"], "samples": raw["samples"], "report": report}
    paths["soak.json"].write_text(json.dumps(summary, indent=1, default=float) + "\n")
    paths["soak.md"].write_text(markdown(raw, report))
    plot(raw, report, paths["soak.png"])
    return paths
