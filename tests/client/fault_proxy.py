"""A small HTTP proxy in front of the real API, to inject faults the client must ride through.

Every request is passed on to the API unchanged, except that ``POST /forward`` requests may first be
answered by the proxy itself (``faults``: the statuses to answer, in order, one per request, each with
``Retry-After``) or held until a moment (``hold_after``/``hold_until``). The proxy records what it saw:
each /forward's file name, time, Authorization header and the status it answered.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

SLUGS = {429: "too_many_requests", 503: "service_unavailable"}
FILENAME = re.compile(rb'filename="([^"]*)"')
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}


@dataclass
class Seen:
    filename: str
    at: float
    authorization: str
    status: int
    injected: bool


@dataclass
class FaultPlan:
    """What the proxy does to /forward: answer ``faults`` first (status, Retry-After seconds), one per
    request; hold every request after the first ``hold_after`` until ``hold_until`` (a monotonic time)."""

    faults: list[tuple[int, float]] = field(default_factory=list)
    hold_after: int | None = None
    hold_until: float = 0.0
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    forwards: int = 0

    def injected(self) -> list[Seen]:
        return [s for s in self.seen if s.injected]


def _handler(upstream: str, plan: FaultPlan) -> type[BaseHTTPRequestHandler]:
    session_local = threading.local()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def _relay(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            is_forward = self.command == "POST" and self.path.split("?")[0] == "/forward"
            fault: tuple[int, float] | None = None
            hold = False
            if is_forward:
                with plan.lock:
                    plan.forwards += 1
                    fault = plan.faults.pop(0) if plan.faults else None
                    hold = plan.hold_after is not None and plan.forwards > plan.hold_after
            if fault is not None:
                status, retry_after = fault
                self._record(body, status, injected=True)
                payload = json.dumps(
                    {"error": SLUGS[status], "message": "injected by the test proxy"}
                ).encode()
                self._answer(
                    status, payload, {"Content-Type": "application/json", "Retry-After": f"{retry_after:g}"}
                )
                return
            if hold:
                time.sleep(max(0.0, plan.hold_until - time.monotonic()))
            session = getattr(session_local, "session", None) or requests.Session()
            session_local.session = session
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP | {"host"}}
            response = session.request(
                self.command, upstream + self.path, headers=headers, data=body, timeout=300
            )
            if is_forward:
                self._record(body, response.status_code, injected=False)
            keep = {k: v for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP}
            self._answer(response.status_code, response.content, keep)

        def _record(self, body: bytes, status: int, injected: bool) -> None:
            found = FILENAME.search(body)
            seen = Seen(
                found.group(1).decode() if found else "",
                time.monotonic(),
                self.headers.get("Authorization", ""),
                status,
                injected,
            )
            with plan.lock:
                plan.seen.append(seen)

        def _answer(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _relay

    return Handler


@contextmanager
def fault_proxy(upstream: str, plan: FaultPlan) -> Iterator[str]:
    """Serve the proxy on a free loopback port; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(upstream, plan))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
