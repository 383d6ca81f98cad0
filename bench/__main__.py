"""`python -m bench` (`make bench`): measure every path in one run and write bench/results/.

Order, one server stack at a time, so that each has the machine to itself:
1. (a) the model alone, PyTorch fp32 then bf16 (channels_last, batch sweep), then ONNX Runtime fp32 and
   OpenVINO bf16 from the same weights, each in its own process;
2. the 12 MP decode + resize micro-bench (the handler's pure functions), in its own process;
3. (b) TorchServe + the stock ``image_classifier`` handler: start, measure, stop;
4. (c) TorchServe + our handler (fp32): start, measure; then (d) the control API in front of that same
   TorchServe: start, measure; then the API-added latency from alternating (c)/(d) runs; then (e), the
   ``mlsvc`` command-line client on a 200-image folder against that (d) (step "cli", run with "ours");
   stop both;
5. the same (c)/(d) pair with the ``fast`` archive: ``--precision auto``, what ``FAST=1 make run`` serves;
6. warm ``make run``: its archive built as the Makefile builds it, then seconds from scripts/run.sh's start
   to the first /forward answer, and whether that answer came at compiled speed (``bench.warm_start``);
7. GET /stats over seeded history rows, SQLite then PostgreSQL.

A step that fails is recorded under "errors" and the run goes on; the report then marks the ratios that
depend on it "n/a". Partial results are written after every step. At the end ``bench.report`` writes
results.json, results.md and results.png (the full report) and latest.md and latest.png (the summary that
``python -m bench.readme`` copies into README.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import machine, report
from bench.images import bench_images
from bench.steps import Bench, log
from bench.torchserve import REPO

RESULTS_DIR = REPO / "bench" / "results"
ALL_STEPS = ("alone", "decode", "stock", "ours", "cli", "fast", "warmstart", "stats")
# OpenMP's idle-thread behaviour: spinning threads in a TorchServe worker take the core the API needs.
THREAD_KNOBS = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0", "GOMP_SPINCOUNT": "0"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--quick", action="store_true", help="smoke run: short cells, fewer rows (a few minutes)")
    p.add_argument("--duration", type=float, help="seconds per cell at 8 clients (default 20; quick 3)")
    p.add_argument("--duration-c1", type=float, help="seconds per cell at 1 client (default 10; quick 2)")
    p.add_argument("--warmup", type=float, help="warm-up seconds before each cell (default 4; quick 1.5)")
    p.add_argument(
        "--server-warmup",
        type=float,
        help="untimed seconds of load on each fresh server before its first cell (default 30; quick 3)",
    )
    p.add_argument("--stats-rows", type=int, help="history rows for /stats (default 1,000,000; quick 50,000)")
    p.add_argument(
        "--quiet-wait",
        type=float,
        help="max seconds to wait for an idle machine before each measurement, 5x that in all "
        "(default 60; quick 15)",
    )
    p.add_argument("--steps", default=",".join(ALL_STEPS), help=f"subset of {','.join(ALL_STEPS)}")
    p.add_argument("--out", type=Path, default=RESULTS_DIR, help="results directory (default bench/results)")
    p.add_argument("--keep-temp", action="store_true", help="keep the temp dir (server logs) for inspection")
    p.add_argument(
        "--runtimes",
        default="onnxruntime,openvino",
        help="other runtimes timed in (a) next to PyTorch: onnxruntime (fp32), openvino (bf16); '' for none",
    )
    p.add_argument(
        "--compile-mode",
        choices=("aot", "jit"),
        default="aot",
        help="(c)/(d) archives compiled at build (aot, what make run serves) or at worker start (jit)",
    )
    p.add_argument("--ts-cpus", help="pin TorchServe (frontend and workers) to these CPUs, e.g. 1 or 0-3")
    p.add_argument("--api-cpus", help="pin the control API (gunicorn) to these CPUs, e.g. 0")
    for knob, example in THREAD_KNOBS.items():
        p.add_argument(
            f"--{knob.lower().replace('_', '-')}",
            dest=knob,
            help=f"set {knob} for every server and model process (e.g. {example}); unset by default",
        )
    args = p.parse_args(argv)
    args.runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    q = args.quick
    args.duration = args.duration or (3.0 if q else 20.0)
    args.duration_c1 = args.duration_c1 or (2.0 if q else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (1.5 if q else 4.0)
    args.server_warmup = args.server_warmup if args.server_warmup is not None else (3.0 if q else 30.0)
    args.stats_rows = args.stats_rows or (50_000 if q else 1_000_000)
    args.quiet_wait = args.quiet_wait if args.quiet_wait is not None else (15.0 if q else 60.0)
    args.steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = set(args.steps) - set(ALL_STEPS)
    if unknown:
        p.error(f"unknown steps: {', '.join(sorted(unknown))}")
    return args


def run_mode(args: argparse.Namespace) -> str:
    """ "full" for every step at the default settings (the run README shows), else "quick" or "custom"."""
    if args.quick:
        return "quick"
    defaults = parse_args([])
    measured = ["steps", "duration", "duration_c1", "warmup", "server_warmup", "stats_rows", "runtimes"]
    measured += ["ts_cpus", "api_cpus", "compile_mode", *THREAD_KNOBS]
    return "full" if all(getattr(args, k) == getattr(defaults, k) for k in measured) else "custom"


def apply_thread_knobs(args: argparse.Namespace) -> dict[str, str]:
    """Export the thread knobs given (servers and model processes inherit them); what is set now."""
    for knob in THREAD_KNOBS:
        value = getattr(args, knob)
        if value is not None:
            os.environ[knob] = value
    return {knob: os.environ[knob] for knob in THREAD_KNOBS if knob in os.environ}


def meta(args: argparse.Namespace, argv: list[str] | None) -> dict[str, Any]:
    """When, how and on what the run measured."""
    images = {im.key: {"label": im.label, "bytes": len(im.data)} for im in bench_images()}
    return {
        "started_at": time.strftime("%Y-%m-%d %H:%M %Z"),
        "mode": run_mode(args),
        "steps": args.steps,
        "command": machine.command_line("bench", argv),
        **machine.describe(),
        "images": images,
        "durations_s": {
            "c1": args.duration_c1,
            "c8": args.duration,
            "warmup": args.warmup,
            "server_warmup": args.server_warmup,
        },
        "clients_note": (
            f"closed loop, keep-alive, {args.duration:g} s at 8 clients and {args.duration_c1:g} s at 1 "
            f"client after {args.warmup:g} s warm-up, each server warmed up for {args.server_warmup:g} s "
            "first; load generator in its own process"
        ),
        "loadavg_at_start": os.getloadavg(),
        "thread_knobs": {knob: os.environ[knob] for knob in THREAD_KNOBS if knob in os.environ},
        "affinity_options": {"ts_cpus": args.ts_cpus, "api_cpus": args.api_cpus},
    }


def new_results(args: argparse.Namespace, argv: list[str] | None) -> dict[str, Any]:
    return {
        "meta": meta(args, argv),
        "model_alone": {},
        "cells": [],
        "preflight": {},
        "servers": {},
        "stats": {},
        "errors": [],
        "step_seconds": {},
    }


def run_steps(bench: Bench) -> None:
    steps: dict[str, tuple[str, Callable[[], None]]] = {
        "alone": ("(a) model alone", bench.model_alone),
        "decode": ("decode micro-bench", bench.decode),
        "stock": ("(b) stock image_classifier", bench.stock),
        "ours": ("(c)+(d) ours fp32", lambda: bench.ours("fp32")),
        "fast": ("(c)+(d) ours fast (--precision auto)", lambda: bench.ours("fast")),
        "warmstart": ("warm make run", bench.warm_start),
    }
    for key, (name, fn) in steps.items():
        if key in bench.args.steps:
            with bench.step(name):
                fn()
    if "stats" in bench.args.steps:
        bench.stats()


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    # Unwind normally (SystemExit), so every server's context manager stops it: none is left running.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    if argv[:1] == ["soak"]:  # python -m bench soak: the long mixed-load run (bench/soak.py)
        from bench import soak

        return soak.main(argv[1:])
    args = parse_args(argv)
    apply_thread_knobs(args)
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="bench_"))
    try:
        bench = Bench(args, tmp, new_results(args, argv))
        run_steps(bench)
        bench.results["meta"]["total_seconds"] = round(time.perf_counter() - t0, 1)
        bench.results["meta"]["idle_wait_seconds"] = round(bench.gate.waited_s, 1)
        paths = report.write_all(bench.results, args.out)
    finally:
        if args.keep_temp:
            log(f"temp dir (kept): {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    log("")
    log(paths["results.md"].read_text())
    log("results: " + "  ".join(str(path) for path in paths.values()))
    return 1 if bench.results["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
