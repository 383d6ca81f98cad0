"""The steps of a bench run, and the state they share (``Bench``): results so far, the plan, the temp dir.

Each step measures one path and adds to ``Bench.results``; ``Bench.step`` records a failing step under
"errors" instead of raising, and saves the partial results after every step.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import process_cpu
from bench.checks import finalize
from bench.images import bench_images
from bench.paired_runs import paired_p50_difference, paired_throughput_ratio
from bench.runner import (
    CellPlan,
    QuietGate,
    Target,
    run_target,
)
from bench.torchserve import (
    COMPILE_MODES,
    OUR_ARCHIVE_ARGS,
    REPO,
    build_our_archive,
    build_stock_archive,
    inference_headers,
    post_bytes,
    predict_url,
    serve,
)
from launcher.torchserve_process import TorchServe

# The model-alone cells in runtimes other than PyTorch: what a user would run instead.
OTHER_RUNTIMES = (("onnxruntime", "fp32"), ("openvino", "bf16"))


def log(msg: str) -> None:
    print(msg, flush=True)


def run_json_module(module: str, *module_args: str, timeout: float = 900.0) -> Any:
    """Run ``python -m module args`` alone (it gets the cores) and parse the JSON it prints last."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *module_args],
        cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"{module} exited {proc.returncode}: {proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def served_precision(ts: TorchServe) -> str | None:
    """The precision a served archive answers in (``fast`` resolves to one at build), from one answer."""
    small = next(image for image in bench_images() if image.key == "small")
    status, body = post_bytes(predict_url(ts), small.data, inference_headers(ts))
    if status != 200:
        return None
    precision: str | None = json.loads(body).get("model", {}).get("precision")
    return precision


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
        finalize(self.results)
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
        """(a): PyTorch eager fp32 and bf16 (keys "fp32", "bf16"), then the other runtimes' cells (keys
        "onnxruntime fp32", "openvino bf16"), each in its own process, same seeded weights and batch sizes."""
        seconds = "1" if self.args.quick else "4"
        sizes = "1,8" if self.args.quick else "1,4,8,16,32"
        cells: list[tuple[str, str, tuple[str, ...]]] = [
            ("fp32", "bench.model_alone", ()),
            ("bf16", "bench.model_alone", ()),
        ]
        cells += [
            (f"{runtime} {precision}", "bench.runtimes", ("--runtime", runtime))
            for runtime, precision in OTHER_RUNTIMES
            if runtime in self.args.runtimes
        ]
        for key, module, extra in cells:
            precision = key.split()[-1]
            busy = self.gate.wait(log)
            try:
                res = run_json_module(
                    module, *extra, "--precision", precision, "--batch-sizes", sizes, "--seconds", seconds
                )
            except (
                RuntimeError
            ) as exc:  # one runtime's failure (not installed, no export) loses only its cell
                self.results["errors"].append(f"(a) {key}: {exc}"[:2000])
                continue
            self.results["model_alone"][key] = {**res, "busy_before": round(busy, 3)}
            log(f"  (a) {key}: {res['images_per_s']:.2f} img/s at batch {res['best_batch_size']}")

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
            target.cpu_roots = [ts.process.pid]
            self.measure(target)

    def ours(self, precision: str) -> None:
        store = self.tmp / f"store_{precision}"
        archive = build_our_archive(store, precision, compile_mode=self.args.compile_mode)
        with serve(self.tmp / f"ts_{precision}", store, archive) as ts:
            self._record_server(f"c_{precision}", ts)
            builder_args = [*OUR_ARCHIVE_ARGS, *COMPILE_MODES[self.args.compile_mode]]
            self.results["servers"][f"c_{precision}"]["builder_args"] = " ".join(builder_args)
            self.results["servers"][f"c_{precision}"]["serves"] = served_precision(ts)
            target = Target("c", precision, f"(c) ours {precision}", predict_url(ts), inference_headers(ts))
            target.fields = ["timings_ms.preprocess", "timings_ms.inference"]
            target.metrics_url = ts.metrics_url
            target.cpu_roots = [ts.process.pid]
            self._place(ts.process.pid, self.args.ts_cpus)
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
            target.cpu_roots = [ts.process.pid, server.proc.pid]
            self._place(server.proc.pid, self.args.api_cpus)
            self.measure(target)
            self.paired_ratios(direct, target)
            if precision == "fp32":
                self.api_added(direct, target)
                if "cli" in self.args.steps:
                    self.cli(server.url, server.token)

    def cli(self, url: str, token: str) -> None:
        """(e) ``mlsvc classify`` on a folder at (d)'s concurrency, against the running (d) stack."""
        from bench import cli_client

        with self.step("(e) mlsvc classify, 200-image folder"):
            small = next(image for image in self.images if image.key == "small")
            busy = self.gate.wait(log)
            res = cli_client.measure(url, token, small, self.tmp / "cli")
            self.results["cli"] = {**res, "busy_before": round(busy, 3)}
            log(f"  (e) mlsvc classify -j {res['concurrency']}: {res['images_per_s']:.2f} images/s")

    def paired_ratios(self, direct: Target, full: Target) -> None:
        """(d)/(c) at 8 clients for each image, from alternating runs on the same TorchServe."""
        rounds, seconds = (2, 3.0) if self.args.quick else (3, 10.0)
        for image in self.images:
            self.gate.wait(log)
            res = paired_throughput_ratio(direct, full, image, 8, rounds, seconds, self.tmp / "loadgen")
            self.results.setdefault("paired_ratio", {}).setdefault(full.precision, {})[image.key] = res
            log(f"  (d)/(c) {full.precision} {image.key} c=8, paired runs: {res['median_ratio']:.3f}")

    def api_added(self, direct: Target, full: Target) -> None:
        rounds, seconds = (3, 2.0) if self.args.quick else (7, 5.0)
        small = next(image for image in self.images if image.key == "small")
        self.gate.wait(log)
        res = paired_p50_difference(direct, full, small, rounds, seconds, self.tmp / "loadgen")
        self.results["api_added"] = res
        log(f"  API-added p50, paired (c)/(d) runs, small, c=1: {res['median_diff_ms']:.2f} ms")

    def warm_start(self) -> None:
        """Warm `make run`: its archive built first (not timed against the target), then seconds from
        scripts/run.sh's start to the first /forward answer (``bench.warm_start``)."""
        from bench import warm_start

        self.results["warm_start"] = warm_start.measure(
            self.tmp / "warm_start", log, wait_idle=lambda: self.gate.wait(log)
        )

    def stats(self) -> None:
        from bench import stats_seed

        for backend in ("sqlite", "postgresql"):
            with self.step(f"/stats {backend}"):
                self.gate.wait(log)
                res = stats_seed.run(backend, self.args.stats_rows, self.tmp / "stats")
                self.results["stats"][backend] = res
                log(f"  /stats {backend}: median {res['median_ms']:.1f} ms over {res['rows']:,} rows")

    def _place(self, root: int, cpus: str | None) -> None:
        """Pin a server's process tree to ``cpus`` (the --ts-cpus / --api-cpus options), when given."""
        if cpus:
            threads = process_cpu.pin(root, process_cpu.parse_cpus(cpus))
            self.results["meta"].setdefault("affinity", {})[str(root)] = {"cpus": cpus, "threads": threads}

    def _record_server(self, key: str, ts: TorchServe) -> None:
        desc = ts.describe()[0]
        keep = ("modelVersion", "batchSize", "maxBatchDelay", "minWorkers", "maxWorkers")
        self.results["servers"][key] = {k: desc.get(k) for k in keep}
