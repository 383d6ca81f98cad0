"""A private TorchServe process: start it, wait until it serves, stop it with everything it spawned.

Each instance gets its own home directory (its cwd: key_file.json lands there), its own temp dir (TorchServe
keeps its pid file and worker sockets there, so two instances never collide), its own logs, and by default
free loopback ports. Its config is the repository's config.properties with the ports swapped, the models
given here, and optional overrides applied, so every user runs the shipped settings.

    ts = start(home, model_store, {"token_expiration_min": 1}, {"resnet50": "resnet50.mar"})
    requests.get(f"{ts.inference_url}/ping", headers=ts.headers())
    ts.stop()

``start(..., wait=False)`` returns as soon as the process runs, for callers that want to do something before
``wait_ready``; by default ``start`` waits, and retries when another process took one of its ports first.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import requests

from launcher.process_group import stop_group

ROOT = Path(__file__).resolve().parent.parent
REPO_CONFIG = ROOT / "config.properties"
PORT_KEYS = ("inference", "management", "metrics", "grpc_inference", "grpc_management")
DEFAULT_MODELS: Mapping[str, str] = MappingProxyType({"resnet50": "resnet50.mar"})
START_TIMEOUT_S = 180.0
# TorchServe's log files, the ones worth showing when it fails.
LOG_FILES = ("console.log", "ts_log.log", "model_log.log")

_running: list[TorchServe] = []


class TorchServeError(RuntimeError):
    """TorchServe exited or did not become ready; the message ends with the tail of its logs."""


@dataclass
class TorchServe:
    """A running TorchServe instance (see ``start``): where it listens, its keys, its logs."""

    home: Path
    model_store: Path
    process: subprocess.Popen[bytes]
    ports: dict[str, int]
    log_dir: Path
    models: tuple[str, ...] = tuple(DEFAULT_MODELS)

    @property
    def config_file(self) -> Path:
        return self.home / "config.properties"

    @property
    def model_name(self) -> str:
        """The first model loaded at start (resnet50 for an instance started without models)."""
        return self.models[0] if self.models else next(iter(DEFAULT_MODELS))

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
        for name in LOG_FILES:
            path = self.log_dir / name
            if path.is_file():
                text = path.read_text(errors="replace").splitlines()
                tail = [line for line in text if "ACCESS_LOG" not in line][-lines:]  # readiness polls
                parts.append(f"--- {path} (last {len(tail)} lines)\n" + "\n".join(tail))
        return "\n".join(parts) or f"(no logs under {self.log_dir})"

    def stop(self, graceful: bool = False) -> None:
        """Stop TorchServe and its workers (see ``stop``)."""
        stop(self, graceful)


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
    home: Path, ports: Mapping[str, int], models: Mapping[str, str], overrides: Mapping[str, object]
) -> Path:
    """The repository config with this instance's ports and models, then ``overrides``; returns its path."""
    props = read_properties(REPO_CONFIG)
    for kind in ("inference", "management", "metrics"):
        props[f"{kind}_address"] = f"http://127.0.0.1:{ports[kind]}"
    for kind in ("grpc_inference", "grpc_management"):
        props[f"{kind}_address"] = "127.0.0.1"
        props[f"{kind}_port"] = str(ports[kind])
    # The per-minute system-metrics collector spawns a Python process: wasted CPU on a small box.
    props["disable_system_metrics"] = "true"
    props.pop("load_models", None)
    if models:
        props["load_models"] = ",".join(f"{name}={archive}" for name, archive in models.items())
    props.update({k: str(v) for k, v in overrides.items()})
    path = home / "config.properties"
    path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    return path


def torchserve_executable() -> str:
    """The torchserve launcher of the running interpreter's environment (the venv's), else PATH's."""
    candidate = Path(sys.executable).parent / "torchserve"
    found = str(candidate) if candidate.is_file() else shutil.which("torchserve")
    if not found:
        raise TorchServeError("torchserve is not installed in this environment")
    return found


def _launch(
    home: Path,
    model_store: Path,
    overrides: Mapping[str, object],
    models: Mapping[str, str],
    ports: Mapping[str, int] | None,
    log_dir: Path,
) -> TorchServe:
    for folder in (home / "tmp", log_dir):
        folder.mkdir(parents=True, exist_ok=True)
    ports = dict(ports or zip(PORT_KEYS, free_ports(len(PORT_KEYS)), strict=True))
    config = write_config(home, ports, models, overrides)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TS_")}  # TS_CONFIG_FILE would win
    tmp = str(home / "tmp")
    # TMPDIR: the launcher's pid file; TEMP: the JVM's java.io.tmpdir (worker sockets, unpacked archives).
    env.update(TMPDIR=tmp, TEMP=tmp, LOG_LOCATION=str(log_dir), METRICS_LOCATION=str(log_dir))
    cmd = [torchserve_executable(), "--start", "--foreground", "--ncs", "--ts-config", str(config)]
    cmd += ["--model-store", str(model_store.resolve())]
    with (log_dir / "console.log").open("ab") as console:
        # A new session: the launcher, java and the Python workers share one process group to stop together.
        process = subprocess.Popen(
            cmd, cwd=home, env=env, stdout=console, stderr=subprocess.STDOUT, start_new_session=True
        )
    ts = TorchServe(home, model_store, process, ports, log_dir, tuple(models))
    _running.append(ts)
    return ts


def wait_ready(ts: TorchServe, timeout: float = START_TIMEOUT_S) -> None:
    """Wait until ``ts`` answers /ping and each of its models has a READY worker; raises TorchServeError
    (with the log tail) when it exits or is not ready within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    problem = "not started"
    while time.monotonic() < deadline:
        if ts.process.poll() is not None:
            raise TorchServeError(f"TorchServe exited with status {ts.process.returncode}\n{ts.log_tail()}")
        problem = readiness_problem(ts)
        if not problem:
            return
        time.sleep(0.25)
    raise TorchServeError(f"TorchServe not ready after {timeout:.0f} s ({problem})\n{ts.log_tail()}")


def readiness_problem(ts: TorchServe) -> str:
    """'' when ``ts`` serves all its models, else what is still missing."""
    if not ts.key_file.is_file():
        return "no key_file.json yet"
    try:
        ping = requests.get(f"{ts.inference_url}/ping", headers=ts.headers(), timeout=5)
        if ping.status_code != 200:
            return f"/ping answered {ping.status_code}"
        for name in ts.models:
            workers = ts.describe(name)[0].get("workers", [])
            if not any(w.get("status") == "READY" for w in workers):
                return f"model {name} has no READY worker"
    except (requests.RequestException, ValueError, KeyError) as exc:  # refused, half-written key file
        return f"{type(exc).__name__}: {exc}"
    return ""


def start(
    home: Path,
    model_store: Path,
    overrides: Mapping[str, object] | None = None,
    models: Mapping[str, str] = DEFAULT_MODELS,
    *,
    ports: Mapping[str, int] | None = None,
    log_dir: Path | None = None,
    wait: bool = True,
    timeout: float = START_TIMEOUT_S,
) -> TorchServe:
    """Start TorchServe in ``home`` serving ``models`` (name -> archive in ``model_store``).

    ``overrides`` are config.properties entries (e.g. {"token_expiration_min": 1}); ``ports`` maps each of
    ``PORT_KEYS`` to a port (free loopback ports when None); logs go to ``log_dir`` (``home``/logs).
    With ``wait``, return once ``wait_ready`` says it serves, retrying on fresh ports when another process
    took one first; an instance that does not come up is stopped again (TorchServeError). Without, return
    at once and call ``wait_ready`` later. Either way the caller must stop() the result."""
    for attempt in range(3):
        ts = _launch(home, model_store, overrides or {}, models, ports, log_dir or home / "logs")
        if not wait:
            return ts
        try:
            wait_ready(ts, timeout)
            return ts
        except TorchServeError as exc:
            ts.stop()
            # A free port can be taken by someone else before java binds it: retry on fresh ports.
            if ports is not None or "Address already in use" not in str(exc) or attempt == 2:
                raise
            if log_dir is None:  # its own logs: the next attempt's tail must not show this one's error
                shutil.rmtree(ts.log_dir, ignore_errors=True)
        except BaseException:
            ts.stop()
            raise
    raise AssertionError("unreachable")


def stop(ts: TorchServe, graceful: bool = False) -> None:
    """Stop TorchServe and its workers: the whole process group, so no java or worker outlives it.

    Graceful means SIGTERM first: java's shutdown hook stops netty, which waits out a quiet period of its
    own. An instance started with --ncs has no snapshot to save, so the default is SIGKILL straight away."""
    if ts in _running:
        _running.remove(ts)
    stop_group(ts.process, graceful)


@atexit.register
def _stop_leftovers() -> None:
    """Last resort (e.g. the caller was interrupted before it could stop its instances)."""
    for ts in list(_running):
        ts.stop()
