"""The proxy fixture: docker/proxy/Caddyfile in front of the API as deployed (scripts/boot.sh) and the
session's real TorchServe. The API runs one worker with one thread, so that a request body reaching it
slowly would block every other request: the proxy must buffer it first. The body limits are shrunk."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.control_api.test_server import boot_server
from tests.deploy.proxy_server import Proxy, run_proxy

MIB = 1024 * 1024


@pytest.fixture(scope="package")
def proxy(torchserve: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    home = tmp_path_factory.mktemp("proxy")
    model_store = home / "model_store"
    model_store.mkdir()
    with (
        boot_server(
            f"sqlite:///{home / 'api.db'}",
            torchserve,
            home,
            API_WORKERS="1",
            API_THREADS="1",
            TRUSTED_PROXIES="1",
            MODEL_STORE=str(model_store),
            # As compose sizes them: the proxy's limits are the API's plus 1 MiB (max_body, max_archive_body).
            MAX_UPLOAD_MB="1",
            MAX_ARCHIVE_MB="5",
            # Per-IP limits (in-process storage: one worker) on /register only; see test_proxy.py.
            RATE_LIMIT_REGISTER="2/minute",
            RATE_LIMIT_TOKEN="",
            RATE_LIMIT_FORWARD="",
        ) as api,
        run_proxy(api, home, model_store, max_body=2 * MIB, max_archive_body=6 * MIB) as proxy,
    ):
        yield proxy
