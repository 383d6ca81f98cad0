"""The helper scripts baked into the images (docker/): healthchecks, the CPU quota, the placeholder guard.

They run without Docker: the HTTP checks talk to a throwaway server on a free loopback port."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

DOCKER = Path(__file__).resolve().parents[2] / "docker"


def load(name: str) -> ModuleType:
    """Import docker/<name>.py under a private name (docker/ is no package; `docker` is a PyPI name)."""
    spec = importlib.util.spec_from_file_location(f"deploy_{name}", DOCKER / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


healthcheck: Any = load("healthcheck")
cpu_quota: Any = load("cpu_quota")


# --- cpu_quota.py -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "cpus"),
    [("max 100000\n", None), ("200000 100000\n", 2.0), ("150000 100000", 1.5), ("garbage", None), ("", None)],
)
def test_parse_cpu_max(text: str, cpus: float | None) -> None:
    assert cpu_quota.parse_cpu_max(text) == cpus


def test_parse_cfs_v1_treats_minus_one_as_unlimited() -> None:
    assert cpu_quota.parse_cfs_v1("-1\n", "100000\n") is None
    assert cpu_quota.parse_cfs_v1("400000\n", "100000\n") == 4.0


@pytest.mark.parametrize(
    ("affinity", "quota", "pinned"),
    [
        (range(8), 2.0, [0, 1]),
        (range(8), 1.5, [0, 1]),  # a fractional CPU still needs a thread
        (range(8), 0.25, [0]),
        ([3, 1, 2, 0], 2.0, [0, 1]),
        (range(8), None, []),  # no quota: nothing to narrow
        (range(2), 4.0, []),  # the quota exceeds the visible CPUs
        (range(4), 4.0, []),
    ],
)
def test_pinned_cpus(affinity: Any, quota: float | None, pinned: list[int]) -> None:
    assert cpu_quota.pinned_cpus(list(affinity), quota) == pinned


def test_cpu_quota_main_never_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert cpu_quota.main() == 0
    out = capsys.readouterr().out.strip()
    assert out == "" or all(part.isdigit() for part in out.split(","))


# --- healthcheck.py -----------------------------------------------------------------------------------------


class FakeServer:
    """Answers GET <path> with the (status, body) set in ``routes``; records the Authorization headers."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, bytes]] = {}
        self.auth: list[str | None] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.auth.append(self.headers.get("Authorization"))
                status, body = server.routes.get(self.path, (404, b"not found"))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer()
    yield fake
    fake.close()


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "key_file.json"
    keys = {"management": {"key": "m-key"}, "inference": {"key": "i-key"}, "API": {"key": "a-key"}}
    path.write_text(json.dumps(keys))
    return path


def check_ts(server: FakeServer, key_file: Path) -> str | None:
    result: str | None = healthcheck.check_torchserve(key_file, f"{server.url}/ping", f"{server.url}/metrics")
    return result


def test_torchserve_healthy_when_ping_says_so_with_the_inference_key(
    server: FakeServer, key_file: Path
) -> None:
    server.routes["/ping"] = (200, b'{"status": "Healthy"}')
    assert check_ts(server, key_file) is None
    assert server.auth == ["Bearer i-key"]


def test_torchserve_unhealthy_while_a_model_has_no_worker(server: FakeServer, key_file: Path) -> None:
    server.routes["/ping"] = (500, b'{"status": "Partial Healthy"}')
    assert "500" in (check_ts(server, key_file) or "")


def test_torchserve_expired_key_falls_back_to_the_metrics_port(server: FakeServer, key_file: Path) -> None:
    server.routes["/ping"] = (400, b'{"code": 400, "type": "InvalidKeyException"}')
    server.routes["/metrics"] = (200, b"# HELP ts_inference_requests_total\n")
    assert check_ts(server, key_file) is None
    del server.routes["/metrics"]
    assert "404" in (check_ts(server, key_file) or "")


def test_torchserve_unhealthy_without_a_key_file(server: FakeServer, tmp_path: Path) -> None:
    server.routes["/ping"] = (200, b'{"status": "Healthy"}')
    assert "key_file.json" in (check_ts(server, tmp_path / "key_file.json") or "")
    (tmp_path / "key_file.json").write_text("{not json")
    assert check_ts(server, tmp_path / "key_file.json")
    assert server.auth == []


def test_api_check_follows_the_health_status(server: FakeServer) -> None:
    server.routes["/health"] = (200, b'{"status": "ok"}')
    assert healthcheck.check_api(f"{server.url}/health") is None
    server.routes["/health"] = (503, b'{"status": "degraded", "torchserve": "unreachable"}')
    assert "503" in healthcheck.check_api(f"{server.url}/health")


def test_healthcheck_main_exit_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    assert healthcheck.main(["healthcheck.py"]) == 2
    assert healthcheck.main(["healthcheck.py", "nope"]) == 2

    def refused() -> str | None:
        raise ConnectionRefusedError("refused")

    monkeypatch.setattr(healthcheck, "check_api", refused)
    assert healthcheck.main(["healthcheck.py", "api"]) == 1
    monkeypatch.setattr(healthcheck, "check_api", lambda: None)
    assert healthcheck.main(["healthcheck.py", "api"]) == 0


# --- Shell scripts ------------------------------------------------------------------------------------------


def run_guard(env: dict[str, str], *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(DOCKER / "refuse-placeholders.sh"), *command],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_placeholder_guard_refuses_change_me() -> None:
    result = run_guard(
        {"SECRET_KEY": "CHANGE_ME", "POSTGRES_PASSWORD": "xCHANGE_MEx", "OK": "v"}, "echo", "ran"
    )
    assert result.returncode == 78
    assert (
        "POSTGRES_PASSWORD" in result.stderr and "SECRET_KEY" in result.stderr and "OK" not in result.stderr
    )
    assert "ran" not in result.stdout


def test_placeholder_guard_runs_the_command_when_clean() -> None:
    result = run_guard({"SECRET_KEY": "x" * 40}, "echo", "ran")
    assert result.returncode == 0 and result.stdout.strip() == "ran"


@pytest.mark.parametrize("script", sorted(p.name for p in DOCKER.glob("*.sh")))
def test_shell_scripts_parse(script: str) -> None:
    shell = "sh" if script == "refuse-placeholders.sh" else "bash"
    result = subprocess.run([shell, "-n", str(DOCKER / script)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
