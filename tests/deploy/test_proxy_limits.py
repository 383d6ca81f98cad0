"""The proxy's request-body limits as docker-compose.yml sets them, against the API's.

Caddy itself reads docker/proxy/Caddyfile (`caddy adapt`) with the proxy's environment, as compose fills it
from .env.example and from its own defaults (no .env values); the API's limits come from control_api.config
with the api service's MAX_UPLOAD_MB and MAX_ARCHIVE_MB from the same source. Every body the API accepts
must get through the proxy, and the proxy must not forward much more than that.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from control_api.config import finalize, from_env
from tests.deploy.proxy_server import CADDYFILE, caddy_binary
from tests.deploy.test_compose import ENV_EXAMPLE, environment, interpolate_text, raw_compose, read_env_file

MIB = 1024 * 1024
ARCHIVES = "/models/archives"


def _service_env(name: str, env: dict[str, str], keys: set[str]) -> dict[str, str]:
    raw = environment(raw_compose()["services"][name])
    return {key: interpolate_text(raw[key], env) for key in keys}


def _handlers(node: Any) -> list[dict[str, Any]]:
    """Every handler under a route, subroutes included."""
    found: list[dict[str, Any]] = []
    for handler in node.get("handle", []):
        found.append(handler)
        for route in handler.get("routes", []):
            found += _handlers(route)
    return found


def _proxy_body_limits(proxy_env: dict[str, str]) -> tuple[dict[str, int], dict[str, int]]:
    """request_body max_size of the HTTPS site's routes, and the Content-Length each refuses at once (its
    expression matcher), by the path each matches ('*': every other)."""
    adapted = subprocess.run(
        [caddy_binary(), "adapt", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
        env={"PATH": os.environ.get("PATH", ""), **proxy_env},
        capture_output=True,
        check=True,
    )
    servers = json.loads(adapted.stdout)["apps"]["http"]["servers"].values()
    (https,) = [server for server in servers if server["listen"] == [":8443"]]
    limits: dict[str, int] = {}
    declared: dict[str, int] = {}
    for site in https["routes"]:
        for handler in site["handle"]:
            for route in handler.get("routes", []):
                paths = [path for match in route.get("match", []) for path in match.get("path", [])]
                for limit in [h for h in _handlers(route) if h["handler"] == "request_body"]:
                    limits.update(dict.fromkeys(paths or ["*"], limit["max_size"]))
                for over in re.findall(r"Content-Length}\) > (\d+)\)", json.dumps(route)):
                    declared.update(dict.fromkeys(paths or ["*"], int(over)))
    return limits, declared


@pytest.mark.parametrize("env_file", [ENV_EXAMPLE, None], ids=["env-example", "compose-defaults"])
def test_the_proxy_passes_every_body_the_api_accepts_and_little_more(
    env_file: Path | None, tmp_path: Path
) -> None:
    env = read_env_file(env_file) if env_file else {}
    proxy_env = _service_env("proxy", env, {"PROXY_MAX_BODY", "PROXY_MAX_ARCHIVE_BODY"})
    api_config = from_env(str(tmp_path), _service_env("api", env, {"MAX_UPLOAD_MB", "MAX_ARCHIVE_MB"}))
    api_config["TESTING"] = True  # no secrets needed to derive the limits
    finalize(api_config)

    limits, declared = _proxy_body_limits(proxy_env)

    assert set(limits) == {ARCHIVES, "*"}
    assert declared == limits
    upload, archive = api_config["MAX_CONTENT_LENGTH"], api_config["MAX_ARCHIVE_CONTENT_LENGTH"]
    assert upload <= limits["*"] <= upload + MIB
    assert archive <= limits[ARCHIVES] <= archive + MIB
