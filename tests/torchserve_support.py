"""Start and stop real TorchServe processes for tests.

Each instance gets its own home directory (its cwd: key_file.json lands there), its own temp dir (TorchServe
keeps its pid file and worker sockets there, so a test instance never collides with `make run`), its own
logs, and free loopback ports. Its config is the repository's config.properties with the ports swapped and
optional overrides applied, so tests run the shipped settings.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
REPO_CONFIG = ROOT / "config.properties"
PORT_KEYS = ("inference", "management", "metrics", "grpc_inference", "grpc_management")
START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 20.0

_running: list[TorchServe] = []


@dataclass
class TorchServe:
    """A running TorchServe instance (see start_torchserve)."""

    home: Path
    model_store: Path
    process: subprocess.Popen[bytes]
    ports: dict[str, int]
    model_name: str = "resnet50"
    config_file: Path = field(init=False)

    def __post_init__(self) -> None:
        self.config_file = self.home / "config.properties"

    @property
    def inference_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['inference']}"

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['management']}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['metrics']}"

    @property
    def key_file(self) -> Path:
        return self.home / "key_file.json"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    def keys(self) -> dict[str, str]:
        """Current keys from key_file.json: management, inference and api (the token-renewal key)."""
        data = json.loads(self.key_file.read_text())
        return {
            "management": data["management"]["key"],
            "inference": data["inference"]["key"],
            "api": data["API"]["key"],
        }

    def headers(self, kind: str = "inference") -> dict[str, str]:
        """Authorization header for one of the keys() kinds."""
        return {"Authorization": f"Bearer {self.keys()[kind]}"}

    def describe(self, model_name: str | None = None) -> list[dict[str, Any]]:
        """Management API description of a model (all its versions)."""
        r = requests.get(
            f"{self.management_url}/models/{model_name or self.model_name}",
            headers=self.headers("management"),
            timeout=10,
        )
        r.raise_for_status()
        result: list[dict[str, Any]] = r.json()
        return result

    def log_tail(self, lines: int = 40) -> str:
        """The end of TorchServe's logs, for failure messages."""
        parts = []
        for name in ("console.log", "ts_log.log", "model_log.log"):
            path = self.log_dir / name
            if path.is_file():
                text = path.read_text(errors="replace").splitlines()
                tail = [line for line in text if "ACCESS_LOG" not in line][-lines:]  # our polling, noise
                parts.append(f"--- {path} (last {len(tail)} lines)\n" + "\n".join(tail))
        return "\n".join(parts) or f"(no logs under {self.log_dir})"

    def stop(self, graceful: bool = False) -> None:
        """Stop TorchServe and its workers: the whole process group, so no java or worker outlives us."""
        if self in _running:
            _running.remove(self)
        _kill_group(self.process, graceful)


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (held open together so the kernel cannot hand out one twice)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def read_properties(path: Path) -> dict[str, str]:
    """key=value lines of a Java properties file (the subset TorchServe's own parser understands)."""
    props: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            props[key.strip()] = value.strip()
    return props


def write_config(
    home: Path, ports: Mapping[str, int], load_models: str | None, overrides: Mapping[str, object]
) -> Path:
    """The repository config with this instance's ports, models and overrides."""
    props = read_properties(REPO_CONFIG)
    for kind in ("inference", "management", "metrics"):
        props[f"{kind}_address"] = f"http://127.0.0.1:{ports[kind]}"
    for kind in ("grpc_inference", "grpc_management"):
        props[f"{kind}_address"] = "127.0.0.1"
        props[f"{kind}_port"] = str(ports[kind])
    # The per-minute system-metrics collector spawns a Python process: wasted CPU on a 2-core test box.
    props["disable_system_metrics"] = "true"
    props.pop("load_models", None)
    if load_models:
        props["load_models"] = load_models
    props.update({k: str(v) for k, v in overrides.items()})
    path = home / "config.properties"
    path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    return path


def torchserve_executable() -> str:
    """The torchserve launcher of the interpreter running the tests (the venv's), else PATH's."""
    candidate = Path(sys.executable).parent / "torchserve"
    found = str(candidate) if candidate.is_file() else shutil.which("torchserve")
    if not found:
        raise RuntimeError("torchserve is not installed in this environment")
    return found


def start_torchserve(
    home: Path,
    model_store: Path,
    *,
    load_models: str | None = "resnet50=resnet50.mar",
    wait_for_models: tuple[str, ...] = ("resnet50",),
    overrides: Mapping[str, object] | None = None,
    timeout: float = START_TIMEOUT_S,
) -> TorchServe:
    """Start TorchServe in ``home`` and wait until it answers /ping and ``wait_for_models`` have a READY
    worker. ``overrides`` are config.properties entries (e.g. {"token_expiration_min": 1}). Raises
    RuntimeError with the log tail when it does not come up; the caller must stop() the result."""
    for attempt in range(3):
        ts = _launch(home, model_store, load_models, overrides or {})
        try:
            _wait_ready(ts, wait_for_models, timeout)
            return ts
        except RuntimeError as exc:
            ts.stop()
            # A free port can be taken by someone else before java binds it: retry on fresh ports.
            if "Address already in use" not in str(exc) or attempt == 2:
                raise
            shutil.rmtree(home / "logs", ignore_errors=True)
        except BaseException:
            ts.stop()
            raise
    raise AssertionError("unreachable")


def _launch(
    home: Path, model_store: Path, load_models: str | None, overrides: Mapping[str, object]
) -> TorchServe:
    home.mkdir(parents=True, exist_ok=True)
    for sub in ("tmp", "logs"):
        (home / sub).mkdir(exist_ok=True)
    ports = dict(zip(PORT_KEYS, free_ports(len(PORT_KEYS)), strict=True))
    config = write_config(home, ports, load_models, overrides)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TS_")}  # TS_CONFIG_FILE would win
    tmp = str(home / "tmp")
    # TMPDIR: the launcher's pid file; TEMP: the JVM's java.io.tmpdir (worker sockets, unpacked archives).
    env.update(TMPDIR=tmp, TEMP=tmp, LOG_LOCATION=str(home / "logs"), METRICS_LOCATION=str(home / "logs"))
    cmd = [torchserve_executable(), "--start", "--foreground", "--ncs", "--ts-config", str(config)]
    cmd += ["--model-store", str(model_store.resolve())]
    with (home / "logs" / "console.log").open("ab") as console:
        # A new session: the launcher, java and the Python workers share one process group to kill at the end.
        process = subprocess.Popen(
            cmd, cwd=home, env=env, stdout=console, stderr=subprocess.STDOUT, start_new_session=True
        )
    ts = TorchServe(home=home, model_store=model_store, process=process, ports=ports)
    _running.append(ts)
    return ts


def _wait_ready(ts: TorchServe, models: tuple[str, ...], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    problem = "not started"
    while time.monotonic() < deadline:
        if ts.process.poll() is not None:
            raise RuntimeError(f"TorchServe exited with status {ts.process.returncode}\n{ts.log_tail()}")
        problem = _readiness_problem(ts, models)
        if not problem:
            return
        time.sleep(0.25)
    raise RuntimeError(f"TorchServe not ready after {timeout:.0f} s ({problem})\n{ts.log_tail()}")


def _readiness_problem(ts: TorchServe, models: tuple[str, ...]) -> str:
    """'' when ready, else what is still missing."""
    if not ts.key_file.is_file():
        return "no key_file.json yet"
    try:
        ping = requests.get(f"{ts.inference_url}/ping", headers=ts.headers(), timeout=5)
        if ping.status_code != 200:
            return f"/ping answered {ping.status_code}"
        for name in models:
            workers = ts.describe(name)[0].get("workers", [])
            if not any(w.get("status") == "READY" for w in workers):
                return f"model {name} has no READY worker"
    except (
        requests.RequestException,
        ValueError,
        KeyError,
    ) as exc:  # starting up: refused, half-written key file
        return f"{type(exc).__name__}: {exc}"
    return ""


def _kill_group(process: subprocess.Popen[bytes], graceful: bool) -> None:
    """Kill the launcher's process group (launcher, java, Python workers) and wait until none is alive.

    Graceful means SIGTERM first: java's shutdown hook stops netty, which alone takes ~2 s of quiet period.
    A test instance has nothing to save (--ncs, no snapshots), so tests use SIGKILL straight away."""
    pgid = process.pid  # start_new_session=True made the launcher a group leader
    if graceful:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        _wait_group(process, pgid, STOP_TIMEOUT_S)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    _wait_group(process, pgid, STOP_TIMEOUT_S)


def _wait_group(process: subprocess.Popen[bytes], pgid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _group_alive(pgid):
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=0.05)  # reaps the launcher, our direct child


def _group_alive(pgid: int) -> bool:
    """Whether a live member remains; zombies don't count (the sandbox's PID 1 may never reap them)."""
    for proc in psutil.process_iter(["status"]):
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                return True
    return False


@atexit.register
def _stop_leftovers() -> None:
    """Last resort (e.g. the session was interrupted before fixture teardown)."""
    for ts in list(_running):
        ts.stop()
