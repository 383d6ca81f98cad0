"""``Client``: the SDK's entry point, one method per thing a user does with the API.

    from mlservice_client import Client

    client = Client("http://127.0.0.1:8000", username="alice", password="...")
    result = client.classify("cat.jpg", top_k=3)
    print(result.top1.label, result.top1.probability)
    for item in client.classify_many(["a.jpg", "b.png"], concurrency=8):
        print(item.source, item.classification.top1 if item.ok else item.error.slug)

Errors are typed (``mlservice_client.errors``) and carry the API's ``error`` slug. 429 and 503 answers are
retried within a deadline, and an expired token is renewed from the username and password given here.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from .errors import ClientError, FileReadError
from .results import Classification, ItemResult
from .rollouts import RolloutMethods
from .transport import RetryPolicy, Transport

Source = str | os.PathLike[str] | bytes
STOP_POLL_S = 0.2  # how often classify_many looks at its stop event


class Client(RolloutMethods):
    """A client of one control API at ``base_url``.

    Give either ``username`` and ``password`` (a token is fetched on first use and renewed when it expires)
    or a ``token`` (used as is; with credentials as well, it is renewed from them when it stops working).
    ``timeout`` is per HTTP request in seconds; ``retry`` says how long to ride out 429 and 503 answers;
    ``on_token`` is called with every new token (the CLI stores it there). Admins also have the rollout
    calls (``mlservice_client.rollouts``).
    Methods may be called from several threads at once."""

    def __init__(
        self,
        base_url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        timeout: float = 120.0,
        retry: RetryPolicy | None = None,
        on_token: Callable[[str], None] | None = None,
    ) -> None:
        if not token and not (username and password):
            raise ValueError("Client needs a token, or a username and a password")
        self._transport = Transport(
            base_url,
            username=username,
            password=password,
            token=token,
            timeout=timeout,
            retry=retry or RetryPolicy(),
            on_token=on_token,
        )

    @property
    def base_url(self) -> str:
        return self._transport.base_url

    @property
    def token(self) -> str | None:
        """The token in use (None until the first call when only credentials were given)."""
        return self._transport.token

    @property
    def renewals(self) -> int:
        """How many times a token that stopped working was replaced by a fresh one."""
        return self._transport.renewals

    def login(self) -> str:
        """Get a fresh token from the username and password now, and return it."""
        return self._transport.login()

    def classify(
        self,
        image: Source,
        *,
        top_k: int | None = None,
        model: str | None = None,
        version: str | None = None,
        filename: str | None = None,
    ) -> Classification:
        """Classify one image: a path, or the file's bytes. ``top_k`` (1-100, the API's default 5),
        ``model`` and ``version`` (the default model's default version when not given) go with it.
        Raises ``InvalidRequestError`` for a bad image (slug ``unsupported_image``, ``empty_input``,
        ``image_too_large``, ...), ``FileReadError`` when a path cannot be read."""
        data, name = _read(image, filename)
        fields = {
            key: str(value)
            for key, value in (("top_k", top_k), ("model", model), ("version", version))
            if value is not None
        }
        body = self._transport.call("POST", "/forward", data=fields, files={"file": (name, data)})
        return Classification.from_json(body)

    def classify_many(
        self,
        images: Iterable[Source],
        *,
        concurrency: int = 4,
        top_k: int | None = None,
        model: str | None = None,
        version: str | None = None,
        stop: threading.Event | None = None,
    ) -> Iterator[ItemResult]:
        """Classify many images, ``concurrency`` at a time, yielding each one's ``ItemResult`` as it
        finishes (not in input order; ``source`` says which it is). A failure is yielded, not raised, so
        one bad file never stops the rest. Setting ``stop`` sends nothing more: the images already sent
        are still yielded, then the iteration ends. Leaving the loop early cancels what was not sent."""
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        stop = stop or threading.Event()
        pending: dict[Future[Classification], str] = {}
        sources = iter(images)
        with ThreadPoolExecutor(concurrency, thread_name_prefix="mlsvc") as pool:
            try:
                while True:
                    for source in () if stop.is_set() else sources:  # at most 2x concurrency queued
                        future = pool.submit(self.classify, source, top_k=top_k, model=model, version=version)
                        pending[future] = _describe(source)
                        if len(pending) >= 2 * concurrency:
                            break
                    if stop.is_set():
                        for future in pending:
                            future.cancel()  # only those no thread has started
                        pending = {f: source for f, source in pending.items() if not f.cancelled()}
                    if not pending:
                        return
                    done, _ = wait(pending, timeout=STOP_POLL_S, return_when=FIRST_COMPLETED)
                    for future in done:
                        yield _item(pending.pop(future), future)
            finally:
                for future in pending:
                    future.cancel()

    def me(self) -> dict[str, Any]:
        """``GET /me``: your account."""
        return dict(self._transport.call("GET", "/me"))

    def history(self, **filters: Any) -> dict[str, Any]:
        """``GET /me/history``: a page of your own requests, newest first. Filters: ``page``,
        ``per_page`` (up to 500), ``since``, ``until``, ``status_code``, ``model``, ``version``,
        ``request_id``. Returns ``{"items", "total", "page", "per_page"}``."""
        return dict(self._transport.call("GET", "/me/history", params=_params(filters)))

    def usage(self, since: str | None = None, until: str | None = None) -> dict[str, Any]:
        """``GET /me/usage``: your requests, images and errors per UTC day (dates as YYYY-MM-DD)."""
        params = _params({"since": since, "until": until})
        return dict(self._transport.call("GET", "/me/usage", params=params))

    def models(self) -> list[dict[str, Any]]:
        """``GET /models``: each model's name, default version and versions with their status."""
        return list(self._transport.call("GET", "/models")["models"])

    def stats(self, **filters: Any) -> dict[str, Any]:
        """``GET /stats`` (admins only: ``PermissionDeniedError`` otherwise): request counts and latency."""
        return dict(self._transport.call("GET", "/stats", params=_params(filters)))


def _params(values: dict[str, Any]) -> dict[str, str]:
    return {key: str(value) for key, value in values.items() if value is not None}


def _describe(source: Source) -> str:
    if isinstance(source, bytes):
        return f"<{len(source)} bytes>"
    return os.fspath(source)


def _read(image: Source, filename: str | None) -> tuple[bytes, str]:
    if isinstance(image, bytes):
        return image, filename or "image"
    path = Path(image)
    try:
        return path.read_bytes(), filename or path.name
    except OSError as exc:
        raise FileReadError(f"{path}: {exc.strerror or exc}") from exc


def _item(source: str, future: Future[Classification]) -> ItemResult:
    try:
        return ItemResult(source, classification=future.result())
    except ClientError as exc:
        return ItemResult(source, error=exc)
