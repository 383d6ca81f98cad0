"""TorchServe failing under the API, each fault on a real TorchServe of its own (own ports, own
processes): a worker SIGKILLed under load, the frontend SIGKILLed, the frontend hung (SIGSTOP) behind
a real gunicorn. The API answers in our error shape, on time, writes a history row for every answer,
and serves again once TorchServe does, without being touched."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from launcher.torchserve_process import TorchServe, start
from tests.control_api.conftest import AuthActions, app_on, assert_error, torchserve_settings
from tests.control_api.forward.test_routes import forward, history
from tests.control_api.test_server import _token, boot_server

# Bounds that tell an answer from a hang, far above the configured timeouts (the box is loaded).
NO_HANG_S = 60.0
RECOVERY_S = 240.0


@pytest.fixture(scope="module")
def own_torchserve(
    tmp_path_factory: pytest.TempPathFactory, torchserve_model_store: Path
) -> Iterator[TorchServe]:
    """A TorchServe for this module's faults; each test leaves it serving again."""
    ts = start(tmp_path_factory.mktemp("faulty_torchserve"), torchserve_model_store)
    try:
        yield ts
    finally:
        ts.stop()


def group_processes(ts: TorchServe, marker: str) -> list[psutil.Process]:
    """The live processes of ``ts``'s group whose command line holds ``marker``."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            mine = os.getpgid(proc.pid) == ts.process.pid and proc.info["status"] != psutil.STATUS_ZOMBIE
            if mine and any(marker in part for part in proc.info["cmdline"] or []):
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def frontend(ts: TorchServe) -> psutil.Process:
    [java] = [
        proc for proc in group_processes(ts, "java") if "model_service_worker" not in " ".join(proc.cmdline())
    ]
    return java


def wait_for_200(call: Any) -> int:
    """Call until it answers 200; the number of calls made."""
    deadline = time.monotonic() + RECOVERY_S
    calls = 0
    while True:
        calls += 1
        if call().status_code == 200:
            return calls
        assert time.monotonic() < deadline, "service did not come back"
        time.sleep(1.0)


def assert_retryable_error(answer: Any) -> None:
    """A JSON 502, 503 or 504 in our shape, with Retry-After. The requests the worker held get 503
    ("Worker died."); those queued behind it wait for the new worker, up to TORCHSERVE_TIMEOUT."""
    assert answer.status_code in (502, 503, 504), (answer.status_code, answer.get_data(as_text=True)[:300])
    body = answer.get_json()
    assert body["error"] in ("upstream_error", "torchserve_unavailable", "torchserve_timeout"), body
    assert int(answer.headers["Retry-After"]) >= 1


def test_worker_killed_under_load(own_torchserve: TorchServe, tmp_path: Path, small_jpeg: bytes) -> None:
    with app_on(
        f"sqlite:///{tmp_path / 'api.db'}", tmp_path / "instance", **torchserve_settings(own_torchserve)
    ) as app:
        headers = AuthActions(app.test_client()).headers()
        answers: list[Any] = []
        done = threading.Event()

        def load() -> None:
            client = app.test_client()
            while not done.is_set():
                answers.append(forward(client, headers, small_jpeg))

        workers = group_processes(own_torchserve, "model_service_worker")
        assert workers, "no TorchServe worker to kill"
        threads = [threading.Thread(target=load) for _ in range(4)]
        for thread in threads:
            thread.start()
        while len(answers) < 4:
            time.sleep(0.05)

        for worker in workers:
            worker.send_signal(signal.SIGKILL)
        seen_before = len(answers)
        deadline = time.monotonic() + NO_HANG_S
        while len(answers) < seen_before + 8 and time.monotonic() < deadline:
            time.sleep(0.1)
        done.set()
        for thread in threads:
            thread.join(NO_HANG_S)
        recovery_calls = wait_for_200(lambda: forward(app.test_client(), headers, small_jpeg))

        failed = [answer for answer in answers if answer.status_code != 200]
        died = [a for a in failed if a.status_code == 503 and "worker died" in a.get_json()["message"]]
        assert died, [(a.status_code, a.get_json()) for a in failed]  # what the worker held
        for answer in failed:
            assert_retryable_error(answer)
        statuses = sorted(row.status_code for row in history(app))
        assert len(statuses) == len(answers) + recovery_calls  # every answer has its row
        assert statuses.count(200) == len(answers) - len(failed) + 1


def test_frontend_killed(start_extra_torchserve, tmp_path: Path, small_jpeg: bytes) -> None:
    ts = start_extra_torchserve()
    with app_on(
        f"sqlite:///{tmp_path / 'api.db'}",
        tmp_path / "instance",
        RETRY_AFTER_SECONDS=4,
        **torchserve_settings(ts),
    ) as app:
        client = app.test_client()
        headers = AuthActions(client).headers()
        assert forward(client, headers, small_jpeg).status_code == 200

        frontend(ts).kill()
        started = time.monotonic()
        refused = forward(client, headers, small_jpeg)
        health = client.get("/health")
        elapsed = time.monotonic() - started

        assert_error(refused, 503, "torchserve_unavailable")
        assert refused.headers["Retry-After"] == "4"
        assert health.status_code == 503
        assert health.get_json()["torchserve"] == "unavailable" and health.get_json()["database"] == "ok"
        assert elapsed < NO_HANG_S
        assert [row.status_code for row in history(app)] == [200, 503]


def test_hung_frontend_leaves_the_other_endpoints_up(
    own_torchserve: TorchServe, tmp_path: Path, small_jpeg: bytes
) -> None:
    settings = {
        "API_WORKERS": "1",
        "API_THREADS": "6",
        "FORWARD_CONCURRENCY": "2",
        "FORWARD_QUEUE_TIMEOUT": "1",
        "FORWARD_USER_CONCURRENCY": "10",
        "TORCHSERVE_TIMEOUT": "8",
    }
    with boot_server(f"sqlite:///{tmp_path / 'api.db'}", own_torchserve, tmp_path, **settings) as server:
        token = _token(server, "alice")
        user = {"Authorization": f"Bearer {token}"}

        def post_forward() -> requests.Response:
            files = {"file": ("a.jpg", small_jpeg, "image/jpeg")}
            return requests.post(f"{server.url}/forward", files=files, headers=user, timeout=NO_HANG_S)

        java = frontend(own_torchserve)
        java.suspend()
        try:
            with ThreadPoolExecutor(6) as pool:
                forwards = [pool.submit(post_forward) for _ in range(6)]
                time.sleep(1.5)  # the forwards hold both slots, the rest wait for one
                me = requests.get(f"{server.url}/me", headers=user, timeout=NO_HANG_S)
                login = requests.post(
                    f"{server.url}/token",
                    data={"username": "alice", "password": "correct horse battery"},
                    timeout=NO_HANG_S,
                )
                health = requests.get(f"{server.url}/health", timeout=NO_HANG_S)
                answers = [future.result() for future in forwards]
        finally:
            java.resume()
        recovery_calls = wait_for_200(post_forward)
        root = {"Authorization": f"Bearer {_token(server, 'root')}"}
        page = requests.get(
            f"{server.url}/history", params={"per_page": 100}, headers=root, timeout=30
        ).json()

        assert me.status_code == 200 and login.status_code == 200
        assert health.status_code == 503 and health.json()["torchserve"] == "unavailable"
        slugs = sorted(answer.json()["error"] for answer in answers)
        assert slugs == ["forward_busy"] * 4 + ["torchserve_timeout"] * 2, slugs
        assert all(
            a.status_code == 503 and a.headers["Retry-After"]
            for a in answers
            if a.json()["error"] == "forward_busy"
        )
        assert all(a.status_code == 504 for a in answers if a.json()["error"] == "torchserve_timeout")
        assert page["total"] == 6 + recovery_calls
