"""Contract fuzzing: Schemathesis against the API as deployed (scripts/boot.sh, gunicorn, real HTTP) in
front of a real TorchServe, with an admin's token and the X-Admin-Token, every check, every phase
(examples, coverage, fuzzing, stateful). It reads the whole OpenAPI document, so new endpoints are fuzzed
without changing this file. Zero failures: every status, content type and constraint the API really has
is in the document.

The TorchServe is this test's own (the fuzzer registers, scales and unregisters models). Its size:
SCHEMATHESIS_MAX_EXAMPLES (per operation and phase, 10 by default) and SCHEMATHESIS_SEED (fixed by
default, so a failure reproduces; any other seed explores other cases).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.control_api.conftest import ADMIN_TOKEN, PASSWORD
from tests.control_api.contract_config import schemathesis_toml
from tests.control_api.test_server import boot_server

MAX_EXAMPLES = os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "10")
SEED = os.environ.get("SCHEMATHESIS_SEED", "20261202")


@pytest.mark.timeout(2400)
def test_schemathesis_finds_no_failure(
    start_extra_torchserve: Callable[..., Any], torchserve_model_store_v2: Path, tmp_path: Path
) -> None:
    torchserve = start_extra_torchserve(torchserve_model_store_v2)
    with boot_server(
        f"sqlite:///{tmp_path / 'api.db'}",
        torchserve,
        tmp_path,
        MODEL_STORE=str(torchserve_model_store_v2),
        # A cap this machine can hold: each worker is a ResNet50 in memory (the document states the cap).
        MAX_MODEL_WORKERS="2",
        # Limits would turn most of the run into 429s: the views are what is fuzzed here.
        RATE_LIMIT_ENABLED="false",
    ) as server:
        login = requests.post(
            f"{server.url}/token", data={"username": "root", "password": PASSWORD}, timeout=30
        )
        assert login.status_code == 200, login.text
        spec = requests.get(f"{server.url}/openapi.json", timeout=30).json()
        config = tmp_path / "schemathesis.toml"
        config.write_text(schemathesis_toml(spec))
        command = [
            str(Path(sys.executable).parent / "st"),
            "--no-color",
            "--config-file",
            str(config),
            "run",
            f"{server.url}/openapi.json",
            "--checks",
            "all",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--max-examples",
            MAX_EXAMPLES,
            "--seed",
            SEED,
            # max_response_time: registering a model waits for its workers, up to
            # TORCHSERVE_MANAGEMENT_TIMEOUT (180 s); nothing may take longer.
            "--max-response-time",
            "240",
            "--request-timeout",
            "300",
            "--header",
            f"Authorization: Bearer {login.json()['access_token']}",
            "--header",
            f"X-Admin-Token: {ADMIN_TOKEN}",
        ]

        run = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)

        print(run.stdout[-6000:])
        assert run.returncode == 0, f"{run.stdout[-20000:]}\n{run.stderr[-3000:]}\n{server.log_tail()}"
