"""``python -m bench soak``: the whole stack under steady mixed load for a long time (not in CI).

A TorchServe with the archive ``make archive`` builds (random weights) and the control API
(scripts/boot.sh, gunicorn, SQLite) start; then:

1. capacity: closed-loop mixed load (``MIX``) from ``--clients`` threads for ``--capacity-seconds``; the
   calls answered per second are the capacity;
2. soak: open-loop load at ``--load`` (70 %) of that capacity for ``--minutes`` (20), the same mix, each
   call sent on schedule whatever the previous ones did. Every ``--sample-seconds`` the resident memory and
   open file descriptors of the API's gunicorn processes and of TorchServe (frontend and workers) are read;
3. the answered /forward calls are compared with the history rows the API wrote.

bench/soak_report.py turns it into soak.json, soak.md and soak.png under bench/results/.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import requests

from bench import machine, soak_report
from bench.api import ApiServer, start_api
from bench.images import small_jpeg
from bench.steps import log
from bench.torchserve import REPO, serve

RESULTS_DIR = REPO / "bench" / "results"
# Share of calls per endpoint (forward dominates, as in production).
MIX = {"forward": 0.70, "history": 0.08, "stats": 0.08, "models": 0.08, "token": 0.06}
ADMIN = "soakadmin"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench soak", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--minutes", type=float, default=20.0, help="soak length (default 20)")
    p.add_argument("--load", type=float, default=0.7, help="share of the measured capacity (default 0.7)")
    p.add_argument("--capacity-seconds", type=float, default=45.0, help="capacity measurement (default 45)")
    p.add_argument("--clients", type=int, default=8, help="threads for the capacity measurement (default 8)")
    p.add_argument("--sample-seconds", type=float, default=10.0, help="memory/fd sampling period")
    p.add_argument("--warmup-minutes", type=float, default=3.0, help="excluded from the growth verdict")
    p.add_argument("--out", type=Path, default=RESULTS_DIR)
    return p.parse_args(argv)


@dataclass
class Caller:
    """Sends one call of a kind to the API with its own connection pool; thread-safe enough for
    requests' Session with one pool per worker thread."""

    server: ApiServer
    admin_headers: dict[str, str]
    password: str
    image: bytes

    def __post_init__(self) -> None:
        self._local = threading.local()

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        session: requests.Session = self._local.session
        return session

    def call(self, kind: str) -> int:
        s, url = self._session(), self.server.url
        if kind == "forward":
            files = {"file": ("soak.jpg", self.image, "image/jpeg")}
            r = s.post(f"{url}/forward", files=files, headers=self.server.headers(), timeout=600)
        elif kind == "history":
            r = s.get(f"{url}/history?per_page=20", headers=self.admin_headers, timeout=600)
        elif kind == "stats":
            r = s.get(f"{url}/stats", headers=self.admin_headers, timeout=600)
        elif kind == "models":
            r = s.get(f"{url}/models", headers=self.admin_headers, timeout=600)
        else:
            r = s.post(f"{url}/token", data={"username": ADMIN, "password": self.password}, timeout=600)
        return r.status_code


class Recorder:
    """Every call's (start offset s, kind, status or 0 for no answer, latency s)."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, str, int, float]] = []
        self._lock = threading.Lock()
        self.t0 = time.monotonic()

    def run(self, caller: Caller, kind: str) -> None:
        started = time.monotonic()
        try:
            status = caller.call(kind)
        except requests.RequestException:
            status = 0
        with self._lock:
            self.calls.append((started - self.t0, kind, status, time.monotonic() - started))


def _kinds(rng: random.Random) -> str:
    return rng.choices(list(MIX), weights=list(MIX.values()))[0]


def measure_capacity(caller: Caller, clients: int, seconds: float) -> float:
    """Calls answered per second, closed loop, ``clients`` threads, the soak's mix."""
    recorder, stop_at = Recorder(), time.monotonic() + seconds

    def loop(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < stop_at:
            recorder.run(caller, _kinds(rng))

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    answered = [c for c in recorder.calls if c[2] and c[0] + c[3] <= seconds]
    return len(answered) / seconds


def _group(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _totals(procs: list[psutil.Process]) -> tuple[float, int]:
    rss, fds = 0, 0
    for p in procs:
        try:
            rss += p.memory_info().rss
            fds += p.num_fds()
        except psutil.Error:
            continue
    return rss / 2**20, fds


def sample(api_pid: int, ts_pid: int, t: float) -> dict[str, float]:
    api_rss, api_fds = _totals(_group(psutil.Process(api_pid)))
    ts_rss, ts_fds = _totals(_group(psutil.Process(ts_pid)))
    return {
        "t": round(t, 1),
        "api_rss_mb": api_rss,
        "api_fds": api_fds,
        "ts_rss_mb": ts_rss,
        "ts_fds": ts_fds,
    }


def soak(caller: Caller, rate: float, seconds: float, period: float, pids: tuple[int, int]) -> dict[str, Any]:
    """Open loop: calls at ``rate`` per second for ``seconds``; memory and fds every ``period`` s."""
    recorder, rng, samples = Recorder(), random.Random(1), []
    interval = 1.0 / rate
    next_sample = 0.0
    with ThreadPoolExecutor(max_workers=64) as pool:
        n = 0
        while True:
            due = n * interval
            now = time.monotonic() - recorder.t0
            if now >= next_sample:
                samples.append(sample(*pids, now))
                next_sample += period
            if due >= seconds:
                break
            if due > now:
                time.sleep(min(due - now, max(next_sample - now, 0.0)))
                continue
            pool.submit(recorder.run, caller, _kinds(rng))
            n += 1
    samples.append(sample(*pids, time.monotonic() - recorder.t0))
    return {"calls": recorder.calls, "samples": samples}


def history_total(caller: Caller) -> int:
    r = requests.get(f"{caller.server.url}/history?per_page=1", headers=caller.admin_headers, timeout=600)
    r.raise_for_status()
    return int(r.json()["total"])


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    started_at, load_at_start = time.strftime("%Y-%m-%d %H:%M %Z"), list(os.getloadavg())
    password = secrets.token_urlsafe(16)
    # The archive `make archive` builds (seeded random weights; the shipped batching, no torch.compile).
    (tmp / "store").mkdir(parents=True)
    builder = [sys.executable, "-m", "handlers.build_archive", "--random-weights", "--no-download"]
    subprocess.run([*builder, "--export-path", str(tmp / "store"), "--force"], check=True, cwd=REPO)
    archive = "resnet50.mar"
    env = {"ADMIN_USERNAME": ADMIN, "ADMIN_PASSWORD": password, "LOG_LEVEL": "WARNING"}
    with serve(tmp / "ts", tmp / "store", archive) as ts, start_api(ts, tmp / "api", env) as server:
        login = requests.post(
            f"{server.url}/token", data={"username": ADMIN, "password": password}, timeout=60
        )
        login.raise_for_status()
        admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
        caller = Caller(server, admin, password, small_jpeg().data)
        log(f"soak: measuring capacity for {args.capacity_seconds:g} s ({args.clients} clients)")
        capacity = measure_capacity(caller, args.clients, args.capacity_seconds)
        rate = capacity * args.load
        before = history_total(caller)
        log(f"soak: capacity {capacity:.1f} calls/s; {args.minutes:g} min at {rate:.1f} calls/s")
        result = soak(
            caller, rate, args.minutes * 60.0, args.sample_seconds, (server.proc.pid, ts.process.pid)
        )
        time.sleep(2.0)  # the last calls' history rows are written after their answers
        rows = history_total(caller) - before
    return {
        "meta": {
            "started_at": started_at,
            "finished_at": time.strftime("%Y-%m-%d %H:%M %Z"),
            **machine.describe(),
            "minutes": args.minutes,
            "load": args.load,
            "mix": MIX,
            "warmup_minutes": args.warmup_minutes,
            "capacity_per_s": capacity,
            "rate_per_s": rate,
            "loadavg_at_start": load_at_start,
            "loadavg_at_end": list(os.getloadavg()),
        },
        "history_rows": rows,
        **result,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="soak_"))
    try:
        raw = run(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report = soak_report.build(raw)
    paths = soak_report.write(raw, report, args.out)
    log(paths["soak.md"].read_text())
    return 0 if report["passed"] else 1
