"""The TorchServe client: one urllib3 connection pool per process, a timeout on every call, and the
right key on every call (``keys``).

urllib3 (the transport under requests) directly: /forward makes one call per image, and requests' layer
on top (request preparation, cookie jar, environment lookups) would add CPU time and latency to each.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote, urlencode

import urllib3
from flask import Flask, current_app

from ..ops import counters
from .answers import UpstreamError, UpstreamResponse, UpstreamTimeout, UpstreamUnavailable
from .keys import KeyKind, KeyStore

log = logging.getLogger(__name__)


class TorchServeClient:
    """Calls TorchServe's inference and management APIs with the right key."""

    def __init__(self, config: Any) -> None:
        self.inference_url: str = config["TORCHSERVE_INFERENCE_URL"]
        self.management_url: str = config["TORCHSERVE_MANAGEMENT_URL"]
        self.read_timeout = float(config["TORCHSERVE_TIMEOUT"])
        # Synchronous registration and scaling return once the workers have loaded the model.
        self.management_timeout = float(config.get("TORCHSERVE_MANAGEMENT_TIMEOUT", 180.0))
        self.connect_timeout = float(config["TORCHSERVE_CONNECT_TIMEOUT"])
        self.parallel = max(1, int(config["TORCHSERVE_PARALLEL"]))
        self.keys = KeyStore(config["TORCHSERVE_KEY_FILE"])
        self._pid = 0
        self._http: urllib3.PoolManager | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._init_lock = threading.Lock()

    # Pools, sockets and threads must not cross a fork (gunicorn --preload): make them per process.
    def _ensure_process_local(self) -> None:
        if self._pid == os.getpid():
            return
        with self._init_lock:
            if self._pid == os.getpid():
                return
            # No retries: a request to TorchServe is not idempotent for us (a history row per attempt), and
            # a stale keep-alive connection is checked before reuse anyway. Proxies are not looked up:
            # TorchServe is an internal service.
            self._http = urllib3.PoolManager(
                num_pools=4, maxsize=max(32, self.parallel * 4), retries=False, block=False
            )
            self._executor = ThreadPoolExecutor(max_workers=self.parallel, thread_name_prefix="torchserve")
            self._pid = os.getpid()

    @property
    def http(self) -> urllib3.PoolManager:
        self._ensure_process_local()
        assert self._http is not None
        return self._http

    @property
    def executor(self) -> ThreadPoolExecutor:
        """A small pool for sending several images at once, so TorchServe can batch them."""
        self._ensure_process_local()
        assert self._executor is not None
        return self._executor

    def _send(
        self,
        method: str,
        url: str,
        key: str | None,
        *,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        body: Any = None,
        timeout: tuple[float, float] | None = None,
    ) -> UpstreamResponse:
        headers = dict(headers or {})
        if key:
            headers["Authorization"] = f"Bearer {key}"
        query = {name: value for name, value in (params or {}).items() if value is not None}
        if query:
            url = f"{url}?{urlencode(query)}"
        connect_s, read_s = timeout or (self.connect_timeout, self.read_timeout)
        started = time.perf_counter()
        try:
            response = self.http.request(
                method,
                url,
                body=body,
                headers=headers,
                timeout=urllib3.Timeout(connect=connect_s, read=read_s),
                redirect=False,
            )
        except urllib3.exceptions.ConnectTimeoutError as exc:  # refused connections included
            counters.UPSTREAM_ERRORS.labels("unavailable").inc()
            raise UpstreamUnavailable(f"TorchServe is unreachable ({type(exc).__name__})") from exc
        except urllib3.exceptions.ReadTimeoutError as exc:
            counters.UPSTREAM_ERRORS.labels("timeout").inc()
            raise UpstreamTimeout(f"TorchServe did not answer within {read_s:g} s") from exc
        except urllib3.exceptions.HTTPError as exc:
            counters.UPSTREAM_ERRORS.labels("unavailable").inc()
            raise UpstreamUnavailable(f"TorchServe is unavailable ({type(exc).__name__})") from exc
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        _count_failure(response.status)
        return UpstreamResponse(response.status, _decode(response.data), elapsed_ms)

    def _renew_call(self, kind: KeyKind) -> Callable[[str], None]:
        def call(api_key: str) -> None:
            log.info("Renewing the TorchServe %s key", kind)
            result = self._send(
                "GET",
                f"{self.management_url}/token",
                api_key,
                params={"type": kind},
                timeout=(self.connect_timeout, 10.0),
            )
            if result.status != 200:
                raise UpstreamError(f"TorchServe refused to renew its {kind} key (HTTP {result.status})")

        return call

    def call(self, kind: KeyKind, method: str, url: str, **kwargs: Any) -> UpstreamResponse:
        """One authorized call; an expired or rejected key is renewed and the call retried once."""
        key = self.keys.key(kind)
        if key is not None and key.expired():
            key = self.keys.renew(kind, key.value, self._renew_call(kind))
        result = self._send(method, url, key.value if key else None, **kwargs)
        if not result.is_invalid_key:
            return result
        renewed = self.keys.renew(kind, key.value if key else None, self._renew_call(kind))
        if renewed is None or (key is not None and renewed.value == key.value):
            counters.UPSTREAM_ERRORS.labels("key").inc()
            raise UpstreamError(f"TorchServe rejected the {kind} key and it could not be renewed")
        retried = self._send(method, url, renewed.value, **kwargs)
        if retried.is_invalid_key:
            counters.UPSTREAM_ERRORS.labels("key").inc()
            raise UpstreamError("TorchServe rejected a freshly renewed key")
        return UpstreamResponse(retried.status, retried.body, result.elapsed_ms + retried.elapsed_ms)

    def predict(
        self,
        model: str,
        version: str | None,
        image: bytes,
        top_k: int,
        request_id: str | None = None,
    ) -> UpstreamResponse:
        """Classify one image. It goes raw (application/octet-stream), with ``top_k`` in the ``X-Top-K``
        header: TorchServe 0.12 drops query parameters, and a multipart body would cost its frontend a
        decode (a third of its CPU on a 12 MP photo)."""
        path = f"/predictions/{quote(model, safe='')}" + (f"/{quote(version, safe='')}" if version else "")
        headers = {"Content-Type": "application/octet-stream", "X-Top-K": str(top_k)}
        if request_id:
            headers["X-Request-ID"] = request_id
        return self.call("inference", "POST", self.inference_url + path, body=image, headers=headers)

    def manage(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        request_id: str | None = None,
        slow: bool = False,
    ) -> UpstreamResponse:
        """One management API call; ``path`` is already quoted. ``slow``: it waits for workers to start
        or stop (synchronous registration, scaling), so it gets the management timeout."""
        read_timeout = self.management_timeout if slow else self.read_timeout
        headers = {"X-Request-ID": request_id} if request_id else {}
        return self.call(
            "management",
            method,
            self.management_url + path,
            params=params,
            headers=headers,
            timeout=(self.connect_timeout, read_timeout),
        )

    def ping(self) -> tuple[bool, str]:
        """TorchServe's own health answer: (healthy, detail)."""
        try:
            result = self.call("inference", "GET", f"{self.inference_url}/ping", timeout=(2.0, 3.0))
        except UpstreamError as exc:
            return False, exc.message
        status = result.body.get("status") if isinstance(result.body, dict) else None
        if result.status == 200 and status == "Healthy":
            return True, "ok"
        return False, f"TorchServe reports {status or 'HTTP ' + str(result.status)}"


def _decode(data: bytes) -> Any:
    """TorchServe's answer: JSON when it is JSON, else its text."""
    try:
        return json.loads(data)
    except ValueError:
        return data.decode("utf-8", errors="replace")


def _count_failure(status: int) -> None:
    """TorchServe's own failure answers, for api_upstream_errors_total (client errors are not its)."""
    if status in (503, 507):
        counters.UPSTREAM_ERRORS.labels("no_worker").inc()
    elif status == 408:
        counters.UPSTREAM_ERRORS.labels("timeout").inc()
    elif status >= 500:
        counters.UPSTREAM_ERRORS.labels("server_error").inc()


class TorchServeExtension:
    """Flask extension holding one ``TorchServeClient`` per app."""

    def init_app(self, app: Flask) -> None:
        app.extensions["torchserve"] = TorchServeClient(app.config)

    @property
    def client(self) -> TorchServeClient:
        client: TorchServeClient = current_app.extensions["torchserve"]
        return client
