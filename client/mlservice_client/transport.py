"""Sending one API call: the Bearer token, its renewal, retries of 429 and 503, errors from answers.

``Transport.call`` sends a request and returns the decoded JSON of a 2xx answer, or raises the typed
``ApiError`` of any other. On the way:

- a 429 or 503 (and a refused connection, or any lost connection for a GET) is sent again after
  ``Retry-After`` when the answer has one, else after an exponential backoff with jitter, until
  ``RetryPolicy.deadline_s`` would be passed: then the last error is raised, with ``attempts`` set;
- a 401 ``token_expired`` (or ``invalid_token``) when the client holds a username and password gets a new
  token from ``/token`` once, and the call is sent again. One thread renews; the others wait for it and
  use its token.

Each thread has its own ``requests.Session`` (keep-alive connections are per thread).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from urllib3.exceptions import NewConnectionError
from urllib3.util.retry import Retry

from .errors import ApiError, AuthenticationError, TransportError, error_class

RETRIED_STATUSES = frozenset({429, 503})
# 401 slugs that a fresh token from /token cures.
RENEWABLE = frozenset({"token_expired", "invalid_token", "token_revoked"})


@dataclass(frozen=True)
class RetryPolicy:
    """When to send a 429/503-answered call again: ``Retry-After`` if given (capped at ``max_delay_s``),
    else ``base_delay_s * 2**n`` with full jitter up to ``max_delay_s``; never past ``deadline_s`` seconds
    after the first attempt. ``deadline_s=0`` turns retries off."""

    deadline_s: float = 120.0
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay_s)
        return random.uniform(0, min(self.max_delay_s, self.base_delay_s * 2**attempt))


def retry_after_seconds(response: requests.Response) -> float | None:
    """The ``Retry-After`` header in seconds (it may be a number or an HTTP date), None if absent or bad."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return float(Retry().parse_retry_after(value))
    except Exception:  # urllib3's InvalidHeader, or an odd value: no hint then
        return None


def error_from(response: requests.Response, attempts: int = 1) -> ApiError:
    """The typed error for a non-2xx answer, from the API's error body (or the bare status)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    slug = str(body.get("error") or f"http_{response.status_code}")
    message = str(body.get("message") or response.reason or "no message")
    return error_class(response.status_code)(
        response.status_code, slug, message, body.get("details"), retry_after_seconds(response), attempts
    )


class Transport:
    """Authenticated, retried HTTP calls to one API (see the module's docstring)."""

    def __init__(
        self,
        base_url: str,
        *,
        username: str | None,
        password: str | None,
        token: str | None,
        timeout: float,
        retry: RetryPolicy,
        on_token: Callable[[str], None] | None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self._password = password
        self.token = token
        self.timeout = timeout
        self.retry = retry
        self.on_token = on_token
        self.renewals = 0  # tokens fetched because the one held stopped working
        self._token_lock = threading.Lock()
        self._local = threading.local()

    @property
    def session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def can_renew(self) -> bool:
        return bool(self.username and self._password)

    def login(self) -> str:
        """A fresh token from ``POST /token`` with the stored credentials; kept and returned."""
        if not self.can_renew():
            raise AuthenticationError(401, "no_credentials", "No username and password to get a token with.")
        body = self.call(
            "POST", "/token", auth=False, data={"username": self.username, "password": self._password}
        )
        self.token = str(body["access_token"])
        if self.on_token:
            self.on_token(self.token)
        return self.token

    def _renew(self, stale: str | None) -> None:
        with self._token_lock:
            if self.token == stale:  # nobody renewed it while this thread waited
                self.login()
                self.renewals += stale is not None  # the first login is no renewal

    def call(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> Any:
        """Send ``method path`` (``kwargs`` go to ``requests``); the JSON of a 2xx answer, or raise."""
        if auth and self.token is None and self.can_renew():
            self._renew(None)
        renewed = False
        while True:
            sent_token = self.token
            response, attempts = self._send_retrying(method, path, sent_token if auth else None, kwargs)
            if response.ok:
                try:
                    return response.json() if response.content else None
                except ValueError as exc:
                    raise TransportError(f"{method} {path}: the answer is not JSON", "bad_answer") from exc
            error = error_from(response, attempts)
            if (
                auth
                and not renewed
                and response.status_code == 401
                and error.slug in RENEWABLE
                and self.can_renew()
            ):
                self._renew(sent_token)
                renewed = True
                continue
            raise error

    def _send_retrying(
        self, method: str, path: str, token: str | None, kwargs: dict[str, Any]
    ) -> tuple[requests.Response, int]:
        """The final answer (not 429/503, or the last one at the deadline) and how many were sent."""
        headers = dict(kwargs.get("headers") or {})
        rest = {key: value for key, value in kwargs.items() if key != "headers"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                response: requests.Response | None = self.session.request(
                    method, self.base_url + path, headers=headers, timeout=self.timeout, **rest
                )
                problem: Exception | None = None
            except requests.ConnectionError as exc:
                if method != "GET" and not _refused(exc):  # it may have been done: never twice
                    raise TransportError(f"{method} {path}: {exc}") from exc
                response, problem = None, exc
            except requests.RequestException as exc:
                raise TransportError(f"{method} {path}: {exc}") from exc
            if response is not None and response.status_code not in RETRIED_STATUSES:
                return response, attempt
            hint = retry_after_seconds(response) if response is not None else None
            wait = self.retry.delay(attempt - 1, hint)
            remaining = self.retry.deadline_s - (time.monotonic() - started)
            if remaining <= 0 or (hint is not None and wait > remaining):  # the server's hint is a floor
                if response is None:
                    raise TransportError(f"{method} {path}: {problem} (gave up after {attempt} attempts)")
                return response, attempt
            time.sleep(min(wait, remaining))


def _refused(exc: requests.ConnectionError) -> bool:
    """Whether the connection was never made (so the request was not sent)."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)
