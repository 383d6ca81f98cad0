"""Where the control API's time goes: py-spy on the gunicorn workers while the bench's load runs.

``python -m bench.profile_api [--image small|12mp] [--clients 1] [--seconds 20] [--precision fp32|bf16]``
starts TorchServe with the bench's archive and the control API in front of it (as ``make bench`` does for
(d)), sends closed-loop load through /forward, and samples every gunicorn worker with py-spy (only threads
holding the GIL: Python CPU, not waiting on TorchServe). It prints the share of the request's samples spent
in each stage of the /forward path and writes the collapsed stacks to
``bench/results/profile_api_<precision>_<image>_c<clients>.txt`` (for flamegraph.pl or speedscope). Needs
ptrace rights on the workers (root, or ``kernel.yama.ptrace_scope=0``).
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import tempfile
import time
from pathlib import Path

from bench.api import api_target, start_api
from bench.images import bench_images
from bench.runner import CellPlan, QuietGate, run_loadgen, write_spec
from bench.torchserve import REPO, VENV_BIN, build_our_archive, serve

RESULTS = REPO / "bench" / "results"
# Stages of /forward, by the frame that starts them (first match in a stack wins, most specific first).
STAGES = [
    ("TorchServe call (urllib3 + JSON)", "TorchServeClient.predict"),
    ("history row (insert + rollup + commit)", "_write_history"),
    ("multipart parse", "Request._load_form_data"),
    ("authentication (JWT + user lookup)", "authenticate"),
    ("response (schema, JSON, hooks)", "Flask.finalize_request"),
    ("other view code (webargs, schemas)", "Flask.dispatch_request"),
    ("Flask request setup", "Flask.wsgi_app"),
    ("gunicorn (HTTP parse, write)", "ThreadWorker.handle"),
]


def stage_shares(collapsed: Path) -> tuple[int, dict[str, int]]:
    """Samples per stage over the stacks that are inside a request."""
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if "ThreadWorker.handle" not in stack:
            continue  # the poller and idle threads
        total += int(n)
        frames = stack.split(";")
        stage = next((name for name, marker in STAGES if any(marker in frame for frame in frames)), "other")
        counts[stage] += int(n)
    return total, dict(counts)


def profile(image_key: str, clients: int, seconds: float, rate: int, precision: str = "fp32") -> int:
    image = next(im for im in bench_images() if im.key == image_key)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"profile_api_{precision}_{image_key}_c{clients}"
    with tempfile.TemporaryDirectory(prefix="profile_api_") as tmp:
        root = Path(tmp)
        archive = build_our_archive(root / "store", precision)
        with serve(root / "ts", root / "store", archive) as ts, start_api(ts, root / "api") as server:
            target = api_target(server, precision)
            warm = CellPlan(duration_s={clients: 5.0}, warmup_s=3.0, gate=QuietGate(0.0, 0.0))
            run_loadgen(write_spec(target, image, clients, warm, root / "warm"))  # compiled graph, pools
            plan = CellPlan(duration_s={clients: seconds}, warmup_s=0.0, gate=QuietGate(0.0, 0.0))
            spec = write_spec(target, image, clients, plan, root / "load")
            spy = [str(VENV_BIN / "py-spy"), "record", "--pid", str(server.proc.pid), "--subprocesses",
                   "--gil", "--nonblocking", "--rate", str(rate), "--duration", str(int(seconds) + 1),
                   "--format", "raw", "--output", f"{stem}.txt"]  # fmt: skip
            sampler = subprocess.Popen(spy)
            time.sleep(0.5)
            result = run_loadgen(spec)
            sampler.wait(timeout=seconds + 60)
    total, stages = stage_shares(Path(f"{stem}.txt"))
    requests = result["requests"]
    print(
        f"{precision}, {image_key}, {clients} client(s): {result['throughput_rps']:.2f} req/s, "
        f"p50 {result['latency_ms']['p50']:.1f} ms (under py-spy at {rate} Hz)"
    )
    print(
        f"GIL-held samples inside requests: {total} ({total / rate / max(requests, 1) * 1000:.2f} ms/request)"
    )
    for name, _ in [*STAGES, ("other", "")]:
        n = stages.get(name, 0)
        if n:
            print(
                f"  {name:<40} {100 * n / total:5.1f} %  {n / rate / max(requests, 1) * 1000:6.3f} ms/request"
            )
    print(f"collapsed stacks: {stem}.txt")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--image", choices=["small", "12mp"], default="small")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="the archive's")
    args = parser.parse_args(argv)
    return profile(args.image, args.clients, args.seconds, args.rate, args.precision)


if __name__ == "__main__":
    raise SystemExit(main())
