"""Helpers for the handler tests that serve extra archives on the session TorchServe."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import requests

from launcher.torchserve_process import TorchServe


@contextmanager
def registered(torchserve: TorchServe, name: str) -> Iterator[str]:
    """Register ``<name>.mar`` from the session's model store with one worker; unregister afterwards."""
    mgmt = {"headers": torchserve.headers("management"), "timeout": 120}
    params = {"url": f"{name}.mar", "initial_workers": 1, "synchronous": "true"}
    r = requests.post(f"{torchserve.management_url}/models", params=params, **mgmt)  # type: ignore[arg-type]
    assert r.status_code == 200, r.text
    try:
        yield name
    finally:
        requests.delete(f"{torchserve.management_url}/models/{name}", **mgmt)  # type: ignore[arg-type]
