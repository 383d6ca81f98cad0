"""`python -m bench` (`make bench`): measure every path in one run and write bench/results/.

Order, one server stack at a time because the box has 2 cores:
1. (a) the model alone, fp32 then bf16, each in its own process;
2. the 12 MP decode + resize micro-bench (the handler's pure functions), in its own process;
3. (b) TorchServe + the stock ``image_classifier`` handler: start, measure, stop;
4. (c) TorchServe + our handler (fp32): start, measure; then (d) the control API in front of that same
   TorchServe: start, measure; then the API-added latency from alternating (c)/(d) runs; stop both;
5. the same (c)/(d) pair with the ``fast`` (bf16) archive;
6. GET /stats over 1,000,000 seeded history rows, SQLite then PostgreSQL.

A step that fails is recorded under "errors" and the run goes on; the report then marks the ratios that
depend on it "n/a". Partial results are written after every step.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import report
from bench.images import bench_images
from bench.runner import CellPlan, QuietGate, Target, paired_p50_difference, run_target
from bench.torchserve import (
    OUR_ARCHIVE_ARGS,
    REPO,
    build_our_archive,
    build_stock_archive,
    inference_headers,
    predict_url,
    serve,
)
from tests.torchserve_support import TorchServe

RESULTS_DIR = REPO / "bench" / "results"
ALL_STEPS = ("alone", "decode", "stock", "ours", "fast", "stats")


def log(msg: str) -> None:
    print(msg, flush=True)


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
    p.add_argument("--out", type=Path, default=RESULTS_DIR, help="results directory")
    p.add_argument("--keep-temp", action="store_true", help="keep the temp dir (server logs) for inspection")
    args = p.parse_args(argv)
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


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def meta(args: argparse.Namespace, argv: list[str] | None) -> dict[str, Any]:
    import torch
    from ts.version import __version__ as ts_version

    images = {im.key: {"label": im.label, "bytes": len(im.data)} for im in bench_images()}
    return {
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "mode": "quick" if args.quick else "full",
        "command": " ".join(
            ["python -m bench", shlex.join(argv if argv is not None else sys.argv[1:])]
        ).strip(),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torchserve": ts_version,
        "python": platform.python_version(),
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
    }


def run_json_module(module: str, *module_args: str, timeout: float = 900.0) -> Any:
    """Run ``python -m module args`` alone (it gets the cores) and parse the JSON it prints last."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *module_args],
        cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"{module} exited {proc.returncode}: {proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


class Bench:
    """State of one run: results so far, the plan, the temp dir and where to save."""

    def __init__(self, args: argparse.Namespace, tmp: Path, results: dict[str, Any]) -> None:
        self.args = args
        self.tmp = tmp
        self.results = results
        self.images = bench_images()
        self.gate = QuietGate(max_wait_s=args.quiet_wait, budget_s=5 * args.quiet_wait)
        self.plan = CellPlan(
            duration_s={1: args.duration_c1, 8: args.duration},
            warmup_s=args.warmup,
            gate=self.gate,
            server_warmup_s=args.server_warmup,
        )

    def save(self) -> None:
        self.args.out.mkdir(parents=True, exist_ok=True)
        report.finalize(self.results)
        (self.args.out / "results.json").write_text(json.dumps(self.results, indent=1, default=str))

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time a step, record (not raise) its failure, and save partial results after it."""
        log(f"== {name}")
        t0 = time.perf_counter()
        try:
            yield
        except Exception as exc:
            log(f"!! {name} failed: {exc}")
            self.results["errors"].append(f"{name}: {type(exc).__name__}: {exc}"[:2000])
            traceback.print_exc()
        finally:
            self.results["step_seconds"][name] = round(time.perf_counter() - t0, 1)
            self.save()

    def measure(self, target: Target) -> dict[str, Any]:
        out = run_target(target, self.images, self.plan, self.tmp / "loadgen", log)
        self.results["cells"].extend(out["cells"])
        self.results["preflight"][f"{target.path}_{target.precision}"] = out["preflight"]
        return out

    def model_alone(self) -> None:
        seconds = "1" if self.args.quick else "4"
        sizes = "1,8" if self.args.quick else "1,4,8,16"
        for precision in ("fp32", "bf16"):
            busy = self.gate.wait(log)
            res = run_json_module(
                "bench.model_alone", "--precision", precision, "--batch-sizes", sizes, "--seconds", seconds
            )
            self.results["model_alone"][precision] = {**res, "busy_before": round(busy, 3)}
            log(f"  (a) {precision}: {res['images_per_s']:.2f} img/s at batch {res['best_batch_size']}")

    def decode(self) -> None:
        repeats = "5" if self.args.quick else "15"
        busy = self.gate.wait(log)
        res = run_json_module("bench.decode_micro", "--repeats", repeats)
        self.results["decode"] = {**res, "busy_before": round(busy, 3)}
        for row in res["rows"]:
            log(f"  {row['name']:<40} median {row['median_ms']:.1f} ms")

    def stock(self) -> None:
        store = self.tmp / "store_stock"
        archive = build_stock_archive(self.tmp / "stock_src", store)
        with serve(self.tmp / "ts_stock", store, archive, {"default_workers_per_model": "1"}) as ts:
            self._record_server("b_fp32", ts)
            target = Target("b", "fp32", "(b) stock, 1 worker", predict_url(ts), inference_headers(ts))
            target.metrics_url = ts.metrics_url
            self.measure(target)

    def ours(self, precision: str) -> None:
        store = self.tmp / f"store_{precision}"
        archive = build_our_archive(store, precision)
        with serve(self.tmp / f"ts_{precision}", store, archive) as ts:
            self._record_server(f"c_{precision}", ts)
            self.results["servers"][f"c_{precision}"]["builder_args"] = " ".join(OUR_ARCHIVE_ARGS)
            target = Target("c", precision, f"(c) ours {precision}", predict_url(ts), inference_headers(ts))
            target.fields = ["timings_ms.preprocess", "timings_ms.inference"]
            target.metrics_url = ts.metrics_url
            self.measure(target)
            self.full_stack(ts, target)

    def full_stack(self, ts: TorchServe, direct: Target) -> None:
        """(d) through the control API in front of ``ts``; failures here do not lose (c)'s cells.
        For fp32, then the API-added latency as paired (c)/(d) runs (see ``paired_p50_difference``)."""
        from bench import api

        precision = direct.precision
        with (
            self.step(f"(d) full stack {precision}"),
            api.start_api(ts, self.tmp / f"api_{precision}") as server,
        ):
            self.results["servers"][f"d_{precision}"] = server.describe()
            target = api.api_target(server, precision)
            target.metrics_url = ts.metrics_url
            self.measure(target)
            if precision == "fp32":
                self.api_added(direct, target)

    def api_added(self, direct: Target, full: Target) -> None:
        rounds, seconds = (3, 2.0) if self.args.quick else (7, 5.0)
        small = next(image for image in self.images if image.key == "small")
        self.gate.wait(log)
        res = paired_p50_difference(direct, full, small, rounds, seconds, self.tmp / "loadgen")
        self.results["api_added"] = res
        log(f"  API-added p50, paired (c)/(d) runs, small, c=1: {res['median_diff_ms']:.2f} ms")

    def stats(self) -> None:
        from bench import stats_seed

        for backend in ("sqlite", "postgresql"):
            with self.step(f"/stats {backend}"):
                self.gate.wait(log)
                res = stats_seed.run(backend, self.args.stats_rows, self.tmp / "stats")
                self.results["stats"][backend] = res
                log(f"  /stats {backend}: median {res['median_ms']:.1f} ms over {res['rows']:,} rows")

    def _record_server(self, key: str, ts: TorchServe) -> None:
        desc = ts.describe()[0]
        keep = ("modelVersion", "batchSize", "maxBatchDelay", "minWorkers", "maxWorkers")
        self.results["servers"][key] = {k: desc.get(k) for k in keep}


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
        "fast": ("(c)+(d) ours fast (bf16)", lambda: bench.ours("bf16")),
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
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
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
    log(paths["md"].read_text())
    log(f"results: {paths['json']}  {paths['md']}  {paths['png']}")
    return 1 if bench.results["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
