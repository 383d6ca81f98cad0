"""Warm `make run`: how long a user waits, with the archive already built, from starting the service to the
first classification, and whether that first answer already comes at compiled speed.

- Cold part, timed on its own (``archive_build_s``) and not counted: the archive built exactly as the
  Makefile's ``$(ARCHIVE)`` rule builds it for `make run` (its command, read from ``make -n``), into a
  temporary model store instead of the repository's.
- Warm part: scripts/run.sh, what `make run` starts, runs a private copy of the service (its environment
  moves the instance, logs, model store and ports under a temporary directory; TorchServe's config is the
  repository's config.properties on free ports). The clock runs from the script's start until a user
  registered then, with a token from /token, gets 200 from ``POST /forward`` (the small JPEG):
  ``seconds_to_first_answer``. Ten more requests follow one at a time: the first answer's latency
  (``first_ms``) against their median (``next_median_ms``) shows whether the first request paid for a compile
  or a lazy initialisation. ``served_as`` is what each TorchServe worker's load line says it serves
  ("fp32 AOT": the archive's compiled package).

Run alone: ``python -m bench.warm_start [--archive model_store/resnet50.mar]`` (an archive given is reused,
not built).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from bench.api import _login, multipart_body
from bench.images import BenchImage, small_jpeg
from bench.torchserve import REPO, post_bytes
from launcher.process_group import group_alive, stop_group
from launcher.torchserve_process import PORT_KEYS, free_ports, write_config

RUN_SH = REPO / "scripts" / "run.sh"
MODEL = "resnet50"
# The archive `make run` serves by default (the Makefile's ARCHIVE without FAST=1).
MAKE_TARGET = "model_store/resnet50.mar"
NEXT_REQUESTS = 10
START_TIMEOUT_S = 400.0  # run.sh itself gives TorchServe 180 s and the API 60 s
STOP_TIMEOUT_S = 90.0
# The settings a user's shell may hold that would point the copy elsewhere than `make run`'s defaults.
DROPPED_ENV_PREFIXES = ("TS_", "TORCHSERVE_", "API_", "RUN_")
DROPPED_ENV = ("DATABASE_URL", "INSTANCE_PATH", "FAST")


def build_args_from_dry_run(make_output: str, export: Path) -> list[str]:
    """The builder's arguments in ``make -n``'s output, with ``--export-path`` set to ``export``."""
    for line in make_output.replace("\\\n", " ").splitlines():
        words = shlex.split(line)
        if "handlers.build_archive" in words:
            args = words[words.index("handlers.build_archive") + 1 :]
            args[args.index("--export-path") + 1] = str(export)
            return args
    raise ValueError(f"no handlers.build_archive command in the Makefile's recipe:\n{make_output}")


def make_run_build_args(export: Path) -> list[str]:
    """The Makefile's builder arguments for `make run`'s archive, writing it into ``export``."""
    env = {k: v for k, v in os.environ.items() if k != "FAST"}
    dry_run = subprocess.run(
        ["make", "--dry-run", "--always-make", MAKE_TARGET],
        cwd=REPO, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return build_args_from_dry_run(dry_run.stdout, export)


def build_archive(store: Path, log: Callable[[str], None]) -> tuple[str, float]:
    """Build `make run`'s archive into ``store``; its file name and the seconds the build took."""
    store.mkdir(parents=True, exist_ok=True)
    args = make_run_build_args(store)
    log(f"  build: python -m handlers.build_archive {shlex.join(args)}")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "handlers.build_archive", *args], cwd=REPO, check=True)
    seconds = time.perf_counter() - t0
    return f"{args[args.index('--archive-name') + 1]}.mar", seconds


def served_as(model_log: str, model: str = MODEL) -> list[str]:
    """What each worker's load line says it serves: "fp32", "fp32 AOT" (the compiled package)..."""
    return re.findall(rf"loaded {re.escape(model)} \S+ on \S+: ([a-z0-9]+(?: AOT)?),", model_log)


def summarize(
    seconds_to_first: float, first_ms: float, next_ms: list[float], served: list[str]
) -> dict[str, Any]:
    """The timed part's record (see the module's docstring for each field)."""
    return {
        "seconds_to_first_answer": round(seconds_to_first, 2),
        "first_ms": round(first_ms, 1),
        "next_median_ms": round(statistics.median(next_ms), 1),
        "next_ms": [round(ms, 1) for ms in next_ms],
        "served_as": ", ".join(sorted(set(served))) or "unknown",
        "workers": len(served),
    }


def run_env(home: Path, store: Path, archive: str, ts_config: Path, api_port: int) -> dict[str, str]:
    """run.sh's environment for a private copy under ``home``; `make run`'s defaults otherwise."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(DROPPED_ENV_PREFIXES) and k not in DROPPED_ENV
    }
    return {
        **env,
        "INSTANCE_PATH": str(home / "instance"),
        "RUN_LOGS": str(home / "logs"),
        "RUN_MODEL_STORE": str(store),
        "RUN_TS_CONFIG": str(ts_config),
        "RUN_ARCHIVE": archive,
        "API_BIND": f"127.0.0.1:{api_port}",
    }


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], run_log: Path, deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = run_log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"scripts/run.sh exited ({proc.returncode}):\n{tail}")
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(f"{url}/health", timeout=2) as resp,
        ):
            if resp.status == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(
        f"the control API did not answer /health within {START_TIMEOUT_S:.0f} s; see {run_log}"
    )


def _forward(url: str, token: str, image: BenchImage) -> tuple[float, dict[str, Any]]:
    """One ``POST /forward``: its latency in ms and the answer; raises unless 200."""
    body, headers = multipart_body(image)
    t0 = time.perf_counter()
    status, answer = post_bytes(f"{url}/forward", body, {"Authorization": f"Bearer {token}", **headers})
    ms = (time.perf_counter() - t0) * 1000.0
    if status != 200:
        raise RuntimeError(f"POST /forward: HTTP {status}: {answer[:500]!r}")
    return ms, json.loads(answer)


def _stop(proc: subprocess.Popen[bytes], home: Path) -> None:
    """Stop the copy as `make run` stops: run.sh's trap runs scripts/stop.sh. Should anything outlive that,
    the supervisor (it stops TorchServe's session), TorchServe itself, then what is left of run.sh's group."""
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()  # SIGTERM: SIGINT may be ignored by a shell started from a background job
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=STOP_TIMEOUT_S)
    instance = home / "instance"
    for pidfile in (
        instance / "torchserve.supervisor.pid",
        instance / "torchserve" / "tmp" / ".model_server.pid",
    ):
        _end_group_of(pidfile, home)
    stop_group(proc, graceful=False)


def _end_group_of(pidfile: Path, home: Path) -> None:
    """SIGTERM the process group of the process ``pidfile`` names, if that process belongs to the copy under
    ``home``; SIGKILL what is left after ``STOP_TIMEOUT_S``."""
    with contextlib.suppress(OSError, ValueError, psutil.Error):
        pid = int(pidfile.read_text())
        if str(home) not in " ".join(psutil.Process(pid).cmdline()):
            return  # a stale pid file: that pid is someone else's now
        pgid = os.getpgid(pid)
        os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
        os.killpg(pgid, signal.SIGKILL)


def time_first_answer(home: Path, store: Path, archive: str, image: BenchImage) -> dict[str, Any]:
    """Start run.sh on ``store``/``archive`` and time it to the first /forward answer (then the next ones);
    the copy is stopped again before this returns."""
    home.mkdir(parents=True, exist_ok=True)
    *ts_ports, api_port = free_ports(len(PORT_KEYS) + 1)
    # make run keeps TorchServe's system metrics on: the one setting write_config changes besides the ports.
    ts_config = write_config(
        home,
        dict(zip(PORT_KEYS, ts_ports, strict=True)),
        {MODEL: archive},
        {"disable_system_metrics": "false"},
    )
    env = run_env(home, store, archive, ts_config, api_port)
    url, run_log = f"http://{env['API_BIND']}", home / "run.log"
    with run_log.open("ab") as out:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [str(RUN_SH)], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_healthy(url, proc, run_log, t0 + START_TIMEOUT_S)
        token = _login(url)
        first_ms, answer = _forward(url, token, image)
        seconds_to_first = time.monotonic() - t0
        next_ms = [_forward(url, token, image)[0] for _ in range(NEXT_REQUESTS)]
    finally:
        _stop(proc, home)
    model_log = home / "logs" / "torchserve" / "model_log.log"
    served = served_as(model_log.read_text(errors="replace")) if model_log.is_file() else []
    return {**summarize(seconds_to_first, first_ms, next_ms, served), "model": answer.get("model")}


def measure(
    work: Path,
    log: Callable[[str], None],
    wait_idle: Callable[[], float] | None = None,
    archive: Path | None = None,
) -> dict[str, Any]:
    """Build `make run`'s archive (or reuse ``archive``), wait for an idle machine, time the warm start."""
    store = work / "model_store"
    if archive is None:
        name, build_s = build_archive(store, log)
        log(f"  archive built in {build_s:.0f} s (cold, not counted)")
    else:
        store.mkdir(parents=True, exist_ok=True)
        name, build_s = archive.name, None
        shutil.copyfile(archive, store / name)
    busy = wait_idle() if wait_idle else None
    res = time_first_answer(work / "run", store, name, small_jpeg())
    res["archive_build_s"] = None if build_s is None else round(build_s, 1)
    if busy is not None:
        res["busy_before"] = round(busy, 3)
    log(
        f"  warm make run: first /forward after {res['seconds_to_first_answer']:.1f} s, served as "
        f"{res['served_as']}; first {res['first_ms']:.0f} ms, median of the next {NEXT_REQUESTS} "
        f"{res['next_median_ms']:.0f} ms"
    )
    return res


def main(argv: list[str] | None = None) -> int:
    import tempfile

    parser = argparse.ArgumentParser(
        prog="python -m bench.warm_start",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--archive", type=Path, help="reuse this built archive instead of building one")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_warm_") as tmp:
        res = measure(Path(tmp), lambda msg: print(msg, file=sys.stderr, flush=True), archive=args.archive)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
