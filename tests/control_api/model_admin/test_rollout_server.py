"""The rollout policy across gunicorn workers: scripts/boot.sh with 2 workers in front of the two-version
TorchServe. A policy set through one worker holds in the other within ROLLOUT_CACHE_SECONDS (1 s)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from tests.control_api.model_admin.conftest import V1, V2
from tests.control_api.test_server import _token, boot_server

ACCESS_FORMAT = "--access-logformat='%(p)s %(m)s %(U)s %(s)s'"


def versions_seen(url: str, headers: dict[str, str], image: bytes, count: int = 32) -> list[str | None]:
    def one(_: int) -> str | None:
        files = {"file": ("a.jpg", image, "image/jpeg")}
        answer = requests.post(f"{url}/forward", files=files, headers=headers, timeout=120)
        assert answer.status_code == 200, answer.text
        version: str | None = answer.json()["model"]["version"]
        return version

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, range(count)))


def test_the_policy_is_shared_by_two_gunicorn_workers(
    rollout_ts: Any, tmp_path: Path, small_jpeg: bytes
) -> None:
    access_log = tmp_path / "access.log"
    env = {"API_ACCESS_LOG": str(access_log), "GUNICORN_CMD_ARGS": ACCESS_FORMAT}
    with boot_server(f"sqlite:///{tmp_path / 'api.db'}", rollout_ts, tmp_path, **env) as server:
        admin = {"Authorization": f"Bearer {_token(server, 'root')}"}
        alice = {"Authorization": f"Bearer {_token(server, 'alice')}"}
        assert set(versions_seen(server.url, alice, small_jpeg, 8)) == {V1}

        policy = {"stable": V1, "canary": V2, "canary_percent": 100}
        put = requests.put(f"{server.url}/models/resnet50/rollout", json=policy, headers=admin, timeout=60)
        assert put.status_code == 200, put.text
        time.sleep(1.5)
        during = versions_seen(server.url, alice, small_jpeg)
        back = requests.post(f"{server.url}/models/resnet50/rollout/rollback", headers=admin, timeout=60)
        assert back.status_code == 200, back.text
        time.sleep(1.5)
        after = versions_seen(server.url, alice, small_jpeg)

    assert set(during) == {V2}
    assert set(after) == {V1}
    forward_pids = {line.split()[0] for line in access_log.read_text().splitlines() if " /forward " in line}
    assert len(forward_pids) == 2, forward_pids  # both workers answered, and both followed the policy
