"""``mlsvc rollout`` and ``mlsvc compare`` (admins), and ``mlsvc models`` for a user, against an API in front
of a TorchServe of their own serving resnet50 1.0 and 2.0 (tests/control_api/model_admin/conftest.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlservice_client import exit_codes
from tests.client.conftest import make_images, mlsvc
from tests.control_api.conftest import PASSWORD
from tests.control_api.model_admin.conftest import V1, V2, rollout_ts, two_version_ts  # noqa: F401 (fixtures)
from tests.control_api.test_server import boot_server


@pytest.fixture
def two_version_api(rollout_ts: Any, tmp_path: Path) -> Iterator[str]:  # noqa: F811
    with boot_server(
        f"sqlite:///{tmp_path / 'api.db'}", rollout_ts, tmp_path, RATE_LIMIT_ENABLED="false"
    ) as server:
        yield server.url


def logged_in(url: str, username: str, config_dir: Path) -> Path:
    if username != "root":
        import requests

        created = requests.post(
            f"{url}/register", json={"username": username, "password": PASSWORD}, timeout=60
        )
        assert created.status_code == 201, created.text
    done = mlsvc("--url", url, "login", "--username", username, config_dir=config_dir,
                 env={"MLSVC_PASSWORD": PASSWORD})  # fmt: skip
    assert done.returncode == 0, done.stderr
    return config_dir


def test_a_canary_rollout_from_the_command_line(two_version_api: str, tmp_path: Path) -> None:
    admin = logged_in(two_version_api, "root", tmp_path / "admin")
    alice = logged_in(two_version_api, "alice", tmp_path / "alice")
    photo = str(make_images(tmp_path / "photos", good=1)[0][0])

    none_yet = mlsvc("rollout", "show", "resnet50", config_dir=admin)
    not_admin = mlsvc("rollout", "show", "resnet50", config_dir=alice)
    started = mlsvc("rollout", "start", "resnet50", "--stable", V1, "--canary", V2, "--percent", "100",
                    config_dir=admin)  # fmt: skip
    time.sleep(1.5)  # each API process caches the policy for a second
    on_canary = mlsvc("classify", photo, "-f", "jsonl", config_dir=alice)
    shown = mlsvc("rollout", "show", "resnet50", config_dir=admin)
    compared = mlsvc("compare", "resnet50", V1, V2, config_dir=admin)
    rolled_back = mlsvc("rollout", "rollback", "resnet50", config_dir=admin)
    again = mlsvc("rollout", "rollback", "resnet50", config_dir=admin)
    cleared = mlsvc("rollout", "clear", "resnet50", config_dir=admin)
    models = mlsvc("models", "--json", config_dir=alice)

    assert none_yet.returncode == exit_codes.API_ERROR and "404" in none_yet.stderr
    assert not_admin.returncode == exit_codes.AUTH and "admin_required" in not_admin.stderr
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout)["canary"] == V2
    assert json.loads(on_canary.stdout)["version"] == V2
    assert json.loads(shown.stdout)["canary_percent"] == 100
    assert compared.returncode == 0, compared.stderr
    assert rolled_back.returncode == 0, rolled_back.stderr
    assert again.returncode == exit_codes.API_ERROR and "already_rolled_back" in again.stderr
    assert cleared.returncode == 0, cleared.stderr
    versions = {v["version"] for m in json.loads(models.stdout) for v in m["versions"]}
    assert models.returncode == 0 and versions == {V1, V2}
