"""Container healthchecks used by docker-compose.yml: ``healthcheck.py api`` or ``healthcheck.py torchserve``.

Exit status 0 means healthy; otherwise one line on stderr says why (``docker inspect`` shows it).
Standard library only, so the same file runs in both images.

- ``api``: ``GET /health`` must answer 200 (the app checks its database and TorchServe itself).
- ``torchserve``: ``key_file.json`` must exist (the api cannot call TorchServe without it) and ``/ping`` with
  the inference key must say Healthy (TorchServe answers 500 while a model has no live worker). A key that
  TorchServe rejects (400/401) has simply expired: nobody renewed it since the last restart (the api renews
  keys when it needs them, and renewing here would churn the api's key), so then a live metrics endpoint
  counts as healthy.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

TIMEOUT_S = 4.0
API_HEALTH_URL = "http://127.0.0.1:8000/health"
TS_KEY_FILE = Path("/home/model-server/keys/key_file.json")
TS_PING_URL = "http://127.0.0.1:8080/ping"
TS_METRICS_URL = "http://127.0.0.1:8082/metrics"
# Loopback only: never route a healthcheck through an HTTP(S)_PROXY set in the container's environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """Status and the start of the body; HTTP errors are answers too. Network errors raise OSError."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with _OPENER.open(request, timeout=TIMEOUT_S) as response:
            return int(response.status), response.read(4096)
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read(4096)


def check_api(url: str = API_HEALTH_URL) -> str | None:
    """None when the control API is healthy, else the reason."""
    status, body = fetch(url)
    return None if status == 200 else f"{url} answered {status}: {body[:300]!r}"


def inference_key(key_file: Path) -> str:
    """The inference key TorchServe wrote; raises ValueError when the file is missing or malformed."""
    try:
        data = json.loads(key_file.read_text())
        key = data["inference"]["key"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"no usable {key_file}: {exc}") from exc
    if not isinstance(key, str) or not key:
        raise ValueError(f"no inference key in {key_file}")
    return key


def ping_is_healthy(body: bytes) -> bool:
    """TorchServe's ping body is {"status": "Healthy"} when every model has its workers."""
    try:
        return json.loads(body).get("status") == "Healthy"
    except (ValueError, AttributeError):
        return False


def check_torchserve(
    key_file: Path = TS_KEY_FILE, ping_url: str = TS_PING_URL, metrics_url: str = TS_METRICS_URL
) -> str | None:
    """None when TorchServe is healthy, else the reason."""
    try:
        key = inference_key(key_file)
    except ValueError as exc:
        return str(exc)
    status, body = fetch(ping_url, {"Authorization": f"Bearer {key}"})
    if status == 200:
        return None if ping_is_healthy(body) else f"ping answered {body[:300]!r}"
    if status in (400, 401):
        metrics_status, _ = fetch(metrics_url)
        return None if metrics_status == 200 else f"key rejected and {metrics_url} answered {metrics_status}"
    return f"ping answered {status}: {body[:300]!r}"


def main(argv: list[str]) -> int:
    """Entry point: returns the exit status for Docker."""
    checks: dict[str, Callable[[], str | None]] = {"api": check_api, "torchserve": check_torchserve}
    if len(argv) != 2 or argv[1] not in checks:
        print(f"usage: {argv[0]} {{{'|'.join(checks)}}}", file=sys.stderr)
        return 2
    try:
        problem = checks[argv[1]]()
    except OSError as exc:  # refused, reset, timed out: not up (yet)
        problem = f"{type(exc).__name__}: {exc}"
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
