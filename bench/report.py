"""One run's reports: the full one (results.md, with results.json and the plot results.png) and the summary
that README's Performance section shows (latest.md and latest.png, see ``bench.readme``).

Run alone to re-render an existing run: ``python -m bench.report bench/results/results.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from bench import tables
from bench.checks import checks, finalize
from bench.machine import cpu_kind, isa_summary


def run_line(meta: dict[str, Any]) -> str:
    """Which command ran, which steps, for how long."""
    minutes = f": {meta['total_seconds'] / 60:.1f} min" if "total_seconds" in meta else ""
    waited = meta.get("idle_wait_seconds")
    idle = f", {waited:.0f} s of it waiting for an idle machine" if waited else ""
    steps = ", ".join(meta.get("steps", [])) or "?"
    command = meta.get("command", "python -m bench")
    return f"`{command}` ({meta.get('mode', '?')} run; steps {steps}){minutes}{idle}."


def machine_line(meta: dict[str, Any]) -> str:
    """The CPU, its ISA extensions, and the software versions."""
    capability = meta.get("torch_cpu_capability")
    kernels = f" (CPU kernels: {capability})" if capability else ""
    isa = isa_summary(meta.get("isa_flags"))
    return (
        f"CPU: {meta.get('cpu', '?')}, {meta.get('cores', '?')} cores; ISA: {isa}. "
        f"torch {meta.get('torch', '?')}{kernels}, TorchServe {meta.get('torchserve', '?')}, "
        f"Python {meta.get('python', '?')}."
    )


def load_line(meta: dict[str, Any]) -> str:
    return f"Random seeded weights. Load: {meta.get('clients_note', '?')}."


def warm_start_line(warm: dict[str, Any]) -> str:
    """The warm `make run` step's figures (bench.warm_start), its check's inputs."""
    build = warm.get("archive_build_s")
    built = f"archive built in {build:.0f} s first, not counted; " if build is not None else ""
    return (
        f"- Warm `make run` ({built}scripts/run.sh on a private instance): the first `POST /forward` "
        f"answered {warm['seconds_to_first_answer']:.1f} s after the start, by {warm['workers']} worker(s) "
        f"serving {warm['served_as']}; that first answer took {warm['first_ms']:.0f} ms, the next "
        f"{len(warm['next_ms'])} a median of {warm['next_median_ms']:.0f} ms"
    )


def notes(results: dict[str, Any]) -> list[str]:
    """The short facts the summary lists under its tables."""
    lines = [
        f"- (a) model alone, {precision}: {res['images_per_s']:.2f} images/s at batch "
        f"{res['best_batch_size']}, its best batch size"
        for precision, res in results.get("model_alone", {}).items()
    ]
    cli = results.get("cli")
    if cli:
        lines.append(
            f"- (e) `mlsvc classify -j {cli['concurrency']}` on a {cli['images']}-image folder: "
            f"{cli['images_per_s']:.2f} images/s ({cli['seconds']:.1f} s, process start included)"
        )
    if results.get("warm_start"):
        lines.append(warm_start_line(results["warm_start"]))
    lines += tables.servers_lines(results)
    lines += tables.sanity_lines(results)
    lines += [f"- Problem: {error}" for error in results.get("errors", [])]
    return lines


def summary(results: dict[str, Any]) -> str:
    """latest.md: the run, the machine, the targets, every cell and the notes (README's section)."""
    meta = results.get("meta", {})
    parts = [f"### Latest run: {meta.get('started_at', '?')}", run_line(meta), machine_line(meta)]
    if results.get("cells"):
        parts.append(load_line(meta))
    parts += ["#### Targets", tables.checks_table(checks(results))]
    cells = tables.cells_table(results)
    if cells:
        parts += ["#### Throughput and latency", cells]
    lines = notes(results)
    if lines:
        parts += ["#### Notes", "\n".join(lines)]
    return "\n\n".join(parts) + "\n"


def markdown(results: dict[str, Any]) -> str:
    """results.md: the whole report, every table."""
    meta = results.get("meta", {})
    parts = [
        f"## Bench results ({meta.get('started_at', '?')}, {meta.get('mode', '?')} run)",
        " ".join((run_line(meta), machine_line(meta), load_line(meta))),
        "### Targets",
        tables.checks_table(checks(results)),
    ]
    for title, table in (
        ("### Throughput and latency", tables.cells_table(results)),
        (
            "### Where the time goes (means per request; TS = TorchServe counters over the cell)",
            tables.breakdown_table(results),
        ),
        ("### CPU-ms per request by process group (over the cell)", tables.cpu_table(results)),
        (
            "### (a) Model alone (PyTorch eager, channels_last; ONNX Runtime; OpenVINO), images/s by batch",
            tables.model_alone_table(results),
        ),
        ("### Decode + resize micro-bench (handler's pure functions)", tables.decode_table(results)),
        ("### GET /stats at scale", tables.stats_table(results)),
    ):
        if table:
            parts += [title, table]
    for title, lines in (
        ("### Server settings", tables.servers_lines(results)),
        ("### Sanity: pre-flight top-1 per path (same seeded weights)", tables.sanity_lines(results)),
        ("### Problems during the run", [f"- {e}" for e in results.get("errors", [])]),
    ):
        if lines:
            parts += [title, "\n".join(lines)]
    return "\n\n".join(parts) + "\n"


def write_all(results: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write results.json, results.md, results.png, latest.md and latest.png; returns their paths. A full
    run also writes cpu-<kind>.md, the summary kept for its kind of CPU (``machine.cpu_kind``)."""
    from bench.plot import plot

    out_dir.mkdir(parents=True, exist_ok=True)
    finalize(results)
    paths = {name: out_dir / name for name in ("results.json", "results.md", "results.png", "latest.md")}
    paths["results.json"].write_text(json.dumps(results, indent=1, default=str))
    paths["results.md"].write_text(markdown(results))
    paths["latest.md"].write_text(summary(results))
    plot(results, paths["results.png"])
    paths["latest.png"] = Path(shutil.copyfile(paths["results.png"], out_dir / "latest.png"))
    meta = results.get("meta", {})
    if meta.get("mode") == "full":
        kind = cpu_kind(str(meta.get("cpu", "?")), meta.get("isa_flags"))
        paths["cpu"] = out_dir / f"cpu-{kind}.md"
        paths["cpu"].write_text(paths["latest.md"].read_text())
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", type=Path, help="results.json of a previous run")
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text())
    paths = write_all(results, args.results.parent)
    print(paths["results.md"].read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
