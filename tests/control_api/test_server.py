"""The API as deployed: scripts/boot.sh (migrations, then gunicorn with 2 workers) on a free port, in front
of the real TorchServe. Proves concurrent writes lose nothing (SQLite WAL + busy timeout, PostgreSQL), that
oversized uploads are refused before the body is sent, and that metrics and rate limits are right across
the workers (prometheus-client multiprocess mode, Redis), with JSON logs."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from launcher.torchserve_process import free_ports
from tests.control_api.conftest import ADMIN_TOKEN, PASSWORD, configured_pg_url, scratch_pg_database

ROOT = Path(__file__).resolve().parents[2]
BOOT = ROOT / "scripts" / "boot.sh"


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def boot_server(database_url: str, torchserve: Any, tmp_path: Path, **extra_env: str) -> Iterator[Server]:
    """scripts/boot.sh with a throwaway environment; stopped (SIGTERM to its group) afterwards."""
    port = free_ports(1)[0]
    own = (
        "TORCHSERVE_",
        "API_",
        "ADMIN_",
        "RATE_LIMIT_",
        "LOG_",
        "REDIS_URL",
        "METRICS_TOKEN",
        "PROMETHEUS_",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(own)}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        DATABASE_URL=database_url,
        SECRET_KEY=secrets.token_urlsafe(48),
        ADMIN_TOKEN=ADMIN_TOKEN,
        ADMIN_USERNAME="root",
        ADMIN_PASSWORD=PASSWORD,
        TORCHSERVE_INFERENCE_URL=torchserve.inference_url,
        TORCHSERVE_MANAGEMENT_URL=torchserve.management_url,
        TORCHSERVE_KEY_FILE=str(torchserve.key_file),
        INSTANCE_PATH=str(tmp_path / "instance"),
        API_BIND=f"127.0.0.1:{port}",
        API_WORKERS="2",
        API_THREADS="8",
        API_PIDFILE=str(tmp_path / "gunicorn.pid"),
        API_ACCESS_LOG="/dev/null",
        # Every thread may forward, as often as it likes: tests that want the bounds set them.
        FORWARD_CONCURRENCY="8",
        FORWARD_USER_CONCURRENCY="16",
        FORWARD_USER_MEGAPIXELS="100000",
        FORWARD_QUEUE_TIMEOUT="30",
    )
    env.update(extra_env)
    log = tmp_path / "api.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(BOOT)], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"boot.sh exited with {process.returncode}\n{server.log_tail()}")
            with suppress(requests.RequestException):
                if requests.get(f"{server.url}/health", timeout=5).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API did not become healthy\n{server.log_tail()}")
            time.sleep(0.3)
        yield server
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest, torchserve: Any, tmp_path: Path) -> Iterator[Server]:
    """A booted server on a brand-new database (boot.sh migrates it)."""
    if request.param == "sqlite":
        with boot_server(f"sqlite:///{tmp_path / 'api.db'}", torchserve, tmp_path) as srv:
            yield srv
        return
    base = configured_pg_url()
    if not base:
        pytest.skip("TEST_DATABASE_URL is not set")
    with scratch_pg_database(base) as url, boot_server(url, torchserve, tmp_path) as srv:
        yield srv


def _token(server: Server, username: str) -> str:
    if username != "root":
        created = requests.post(
            f"{server.url}/register", json={"username": username, "password": PASSWORD}, timeout=30
        )
        assert created.status_code == 201, created.text
    response = requests.post(
        f"{server.url}/token", data={"username": username, "password": PASSWORD}, timeout=30
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def test_concurrent_forwards_are_all_recorded(server: Server, small_jpeg: bytes) -> None:
    """64 forwards over 8 threads, through 2 gunicorn workers: 64 history rows, exactly."""
    user = {"Authorization": f"Bearer {_token(server, 'alice')}"}
    admin = {"Authorization": f"Bearer {_token(server, 'root')}"}  # created from ADMIN_USERNAME at start

    def one(_: int) -> tuple[int, float]:
        started = time.perf_counter()
        response = requests.post(
            f"{server.url}/forward", files={"file": ("cat.jpg", small_jpeg)}, headers=user, timeout=120
        )
        return response.status_code, time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(one, range(64)))
    elapsed = time.perf_counter() - started
    assert [status for status, _ in outcomes] == [200] * 64
    latencies = sorted(seconds for _, seconds in outcomes)
    print(
        f"\n64 forwards, concurrency 8: {64 / elapsed:.1f} req/s, "
        f"p50 {statistics.median(latencies) * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms"
    )
    # One anonymous attempt: refused, counted in metrics, not recorded.
    assert (
        requests.post(f"{server.url}/forward", files={"file": ("a.jpg", small_jpeg)}, timeout=30).status_code
        == 401
    )

    listed = requests.get(f"{server.url}/history?per_page=500", headers=admin, timeout=30).json()
    assert listed["total"] == 64
    assert sorted({item["status_code"] for item in listed["items"]}) == [200]
    assert len({item["request_id"] for item in listed["items"]}) == 64
    stats = requests.get(f"{server.url}/stats", headers=admin, timeout=30).json()
    assert stats["total_requests"] == 64 and stats["status_codes"] == {"200": 64}


def _raw_request(
    server: Server, head: str, body: bytes = b"", read_timeout: float = 10.0, half_close: bool = False
) -> str:
    """Send ``head`` (and ``body``) on a raw socket; return the status line of the answer.
    ``half_close``: then stop sending (the server reads end-of-stream) but keep reading."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=read_timeout) as sock:
        sock.sendall(head.encode("latin-1"))
        with suppress(OSError):  # the server may close before taking the whole body
            sock.sendall(body)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        data = b""
        with suppress(OSError):
            while b"\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
    return data.split(b"\r\n", 1)[0].decode("latin-1")


def test_oversized_upload_refused_before_the_body_is_sent(server: Server) -> None:
    token = _token(server, "bob")
    head = (
        "POST /forward HTTP/1.1\r\nHost: test\r\n"
        f"Authorization: Bearer {token}\r\n"
        "Content-Type: multipart/form-data; boundary=xyz\r\n"
        f"Content-Length: {200 * 1024 * 1024}\r\n\r\n"
    )
    started = time.perf_counter()
    status = _raw_request(server, head)  # not one byte of the 200 MB body is sent
    assert status.startswith("HTTP/1.1 413"), status
    assert time.perf_counter() - started < 5


def test_body_shorter_than_its_content_length_is_400_and_recorded(server: Server, small_jpeg: bytes) -> None:
    token = _token(server, "dave")
    admin = {"Authorization": f"Bearer {_token(server, 'root')}"}
    part = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n' + small_jpeg
    head = (
        "POST /forward HTTP/1.1\r\nHost: test\r\n"
        f"Authorization: Bearer {token}\r\n"
        "Content-Type: multipart/form-data; boundary=xyz\r\n"
        f"Content-Length: {len(part) + 1000}\r\n\r\n"
    )
    status = _raw_request(server, head, part, half_close=True)  # 1000 bytes never come
    assert status.startswith("HTTP/1.1 400"), status
    listed = requests.get(f"{server.url}/history?username=dave", headers=admin, timeout=30).json()
    assert [item["status_code"] for item in listed["items"]] == [400]


def test_chunked_upload_over_the_limit_is_413(server: Server) -> None:
    token = _token(server, "carol")
    boundary = "xyz"
    payload = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n\r\n'.encode()
        + b"\xff" * (21 * 1024 * 1024)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    chunks = b"".join(
        f"{len(payload[i : i + 65536]):x}\r\n".encode() + payload[i : i + 65536] + b"\r\n"
        for i in range(0, len(payload), 65536)
    )
    head = (
        "POST /forward HTTP/1.1\r\nHost: test\r\n"
        f"Authorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    status = _raw_request(server, head, chunks + b"0\r\n\r\n", read_timeout=60)
    assert status.startswith("HTTP/1.1 413"), status


def _metric(server: Server, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(f"{server.url}/metrics", timeout=30).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


def test_metrics_rate_limits_and_logs_across_workers(
    torchserve: Any, tmp_path: Path, small_jpeg: bytes
) -> None:
    """2 workers: /metrics sums both, whichever answers; the /token budget in Redis is shared; JSON logs."""
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    prefix = f"test-{secrets.token_hex(6)}"
    metrics_dir = tmp_path / "prometheus"
    env = {
        "LOG_FORMAT": "json",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "RATE_LIMIT_KEY_PREFIX": prefix,
        "RATE_LIMIT_TOKEN": "4/minute",
    }
    try:
        with boot_server(f"sqlite:///{tmp_path / 'api.db'}", torchserve, tmp_path, **env) as server:
            headers = {"Authorization": f"Bearer {_token(server, 'alice')}"}  # /token call 1 of 4

            def one(i: int) -> int:
                response = requests.post(  # a new connection each: either worker may take it
                    f"{server.url}/forward",
                    files={"file": ("a.jpg", small_jpeg)},
                    headers={**headers, "X-Request-ID": f"mp-{i}"},
                    timeout=120,
                )
                return response.status_code

            with ThreadPoolExecutor(max_workers=8) as pool:
                assert list(pool.map(one, range(24))) == [200] * 24
            # Both workers wrote values; every scrape (any worker) sees the sum.
            assert len(list(metrics_dir.glob("counter_*.db"))) >= 2
            for _ in range(4):
                assert (
                    _metric(server, "api_requests_total", endpoint="/forward", method="POST", status="200")
                    == 24
                )

            # /token: 3 more fit the shared budget of 4 a minute, whichever worker answers; the 5th does not.
            login = {"username": "alice", "password": "wrong password"}
            statuses = [
                requests.post(f"{server.url}/token", data=login, timeout=30).status_code for _ in range(4)
            ]
            assert statuses == [401, 401, 401, 429]
        lines = [line for line in server.log.read_text().splitlines() if line.startswith("{")]
        records = [json.loads(line) for line in lines]
        access = [
            r for r in records if r.get("logger") == "control_api.access" and r.get("path") == "/forward"
        ]
        assert {r["request_id"] for r in access} == {f"mp-{i}" for i in range(24)}
        assert {r["user"] for r in access} == {"alice"} and {r["status"] for r in access} == {200}
        assert any(r["logger"].startswith("gunicorn") for r in records)  # gunicorn's own lines are JSON too
    finally:
        import redis

        client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
        for key in client.scan_iter(match=f"*{prefix}*"):
            client.delete(key)
        client.close()


def test_workers_freeze_what_the_app_loaded(app) -> None:
    """gunicorn.conf.py's post_worker_init: objects alive after the app loads leave the collector's walk."""
    import gc
    import runpy
    from types import SimpleNamespace

    app.config["RECONCILE_SECONDS"] = 0  # the worker's reconciler is test_reconciler.py's concern
    conf = runpy.run_path(str(ROOT / "control_api" / "gunicorn.conf.py"))
    try:
        conf["post_worker_init"](
            SimpleNamespace(wsgi=app)
        )  # what gunicorn passes: its worker, holding the app
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
