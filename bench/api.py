"""(d) The full stack: the control API (gunicorn, started by ``scripts/boot.sh``) in front of a TorchServe.

The API gets a private instance directory, a fresh SQLite database (the ``make run`` default; every
/forward writes its history row there), throwaway secrets, a free port on 127.0.0.1, and the TorchServe's
URLs and key file. The bench registers a user, gets a JWT from /token, and sends ``POST /forward`` with
the image as a multipart part named ``file`` - the body is encoded once, here, and replayed by the load
generator. The server runs in its own session and the whole process group is stopped at the end.

Run alone against a fresh TorchServe with our archive: ``python -m bench.api [--precision bf16]``.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.images import BenchImage
from bench.runner import Target
from bench.torchserve import REPO, VENV_BIN, post_bytes
from launcher.process_group import stop_group
from launcher.torchserve_process import TorchServe, free_ports

BOOT = REPO / "scripts" / "boot.sh"
START_TIMEOUT_S = 120.0
BOUNDARY = "bench-" + "0123456789abcdef" * 2


@dataclass
class ApiServer:
    """A running control API."""

    url: str
    home: Path
    proc: subprocess.Popen[bytes]
    env: dict[str, str] = field(repr=False)
    token: str = ""

    def describe(self) -> dict[str, Any]:
        return {"database": "SQLite (fresh file)", **gunicorn_settings(self.env)}

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def gunicorn_settings(env: dict[str, str]) -> dict[str, Any]:
    """workers / worker_class / threads as control_api/gunicorn.conf.py resolves them under ``env``."""
    saved = dict(os.environ)
    try:
        os.environ.update(env)
        conf = runpy.run_path(str(REPO / "control_api" / "gunicorn.conf.py"))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return {k: conf.get(k) for k in ("workers", "worker_class", "threads")}


def multipart_body(image: BenchImage) -> tuple[bytes, dict[str, str]]:
    """``multipart/form-data`` with one part named ``file`` (what /forward reads), encoded once."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{image.key}.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    body = head + image.data + f"\r\n--{BOUNDARY}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def api_target(server: ApiServer, precision: str) -> Target:
    return Target("d", precision, f"(d) full stack {precision}", f"{server.url}/forward", server.headers(),
                  multipart_body, fields=["processing_time_ms"])  # fmt: skip


def _env(ts: TorchServe, home: Path, port: int) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("TS_")},
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "INSTANCE_PATH": str(home),
        "DATABASE_URL": f"sqlite:///{home / 'control_api.db'}",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "ADMIN_TOKEN": secrets.token_urlsafe(32),
        "JWT_EXPIRATION_MINUTES": "240",
        # The bench measures throughput, not the per-user /forward limits: its 8 clients are one user.
        "RATE_LIMIT_ENABLED": "false",
        "FORWARD_CONCURRENCY": "16",
        "FORWARD_USER_CONCURRENCY": "16",
        "FORWARD_USER_MEGAPIXELS": "100000",
        "FORWARD_QUEUE_TIMEOUT": "30",
        "TORCHSERVE_INFERENCE_URL": ts.inference_url,
        "TORCHSERVE_MANAGEMENT_URL": ts.management_url,
        "TORCHSERVE_KEY_FILE": str(ts.key_file),
        # gunicorn.conf.py reads these; the pid file must not land on `make run`'s instance/gunicorn.pid.
        "API_BIND": f"127.0.0.1:{port}",
        "API_PIDFILE": str(home / "gunicorn.pid"),
    }


def _request_json(url: str, payload: dict[str, Any]) -> tuple[int, Any]:
    status, body = post_bytes(url, json.dumps(payload).encode(), {"Content-Type": "application/json"}, 60)
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body[:300]


def _login(url: str) -> str:
    """Register a throwaway user and return its JWT."""
    creds = {"username": f"bench_{secrets.token_hex(3)}", "password": secrets.token_urlsafe(16)}
    status, body = _request_json(f"{url}/register", creds)
    if status != 201:
        raise RuntimeError(f"POST /register: HTTP {status}: {body}")
    status, body = _request_json(f"{url}/token", creds)
    if status != 200:
        raise RuntimeError(f"POST /token: HTTP {status}: {body}")
    return str(body["access_token"])


def _wait_healthy(server: ApiServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    last = "no answer"
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(
                f"the control API exited ({server.proc.returncode}); see {server.home / 'api.log'}"
            )
        try:
            with urllib.request.urlopen(f"{server.url}/health", timeout=5) as resp:
                if resp.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.5)
    raise TimeoutError(f"control API not healthy after {START_TIMEOUT_S:.0f} s ({last}); see {server.home}")


@contextmanager
def start_api(ts: TorchServe, home: Path, extra_env: dict[str, str] | None = None) -> Iterator[ApiServer]:
    """The control API via scripts/boot.sh in front of ``ts``, with a logged-in bench user.
    ``extra_env`` adds to or overrides the server's environment."""
    if not BOOT.is_file():
        raise FileNotFoundError(f"{BOOT} does not exist yet")
    home.mkdir(parents=True, exist_ok=True)
    (port,) = free_ports(1)
    env = {**_env(ts, home, port), **(extra_env or {})}
    with open(home / "api.log", "ab") as log:
        proc = subprocess.Popen(
            [str(BOOT)], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = ApiServer(f"http://127.0.0.1:{port}", home, proc, env)
    try:
        _wait_healthy(server)
        server.token = _login(server.url)
        yield server
    finally:
        stop_group(proc)


def main(argv: list[str] | None = None) -> int:
    import tempfile

    from bench.images import small_jpeg
    from bench.torchserve import build_our_archive, serve

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_api_") as tmp:
        root = Path(tmp)
        archive = build_our_archive(root / "store", args.precision)
        with serve(root / "ts", root / "store", archive) as ts, start_api(ts, root / "api") as server:
            body, extra = multipart_body(small_jpeg())
            status, resp = post_bytes(f"{server.url}/forward", body, {**server.headers(), **extra})
            print(status, resp[:800].decode(errors="replace"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
