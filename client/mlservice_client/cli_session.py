"""What every ``mlsvc`` command shares: the group's options (``Session``), the client they make, and the
translation of the client's errors into a message and the documented exit code (``api_command``)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from . import config, exit_codes
from .client import Client
from .errors import ClientError, NotLoggedInError
from .transport import RetryPolicy

F = TypeVar("F", bound=Callable[..., Any])


class Session:
    """The group's options, and the client they make."""

    def __init__(self, url: str | None, token: str | None, timeout: float, deadline: float) -> None:
        self.stored = config.load()
        self.url = url or self.stored.url or config.DEFAULT_URL
        self.token = token
        self.timeout = timeout
        self.deadline = deadline

    def client(self, username: str | None = None, password: str | None = None) -> Client:
        """A client with the token given, else the stored one (renewed and stored again when it expires,
        if MLSVC_PASSWORD is set); exits 3 when there is none."""
        token = self.token or (self.stored.token if self.stored.url in ("", self.url) else "")
        username = username or self.stored.username or None
        password = password or _env_password()
        if not token and not (username and password):
            raise NotLoggedInError("not logged in: run `mlsvc login` (or set MLSVC_TOKEN)")
        on_token = None if self.token else self._store_token
        return Client(
            self.url,
            username=username,
            password=password,
            token=token or None,
            timeout=self.timeout,
            retry=RetryPolicy(deadline_s=self.deadline),
            on_token=on_token,
        )

    def _store_token(self, token: str) -> None:
        self.stored.url, self.stored.token = self.url, token
        config.save(self.stored)


def _env_password() -> str | None:
    return os.environ.get("MLSVC_PASSWORD") or None


def api_command(fn: F) -> F:
    """Turn the client's errors into a message on stderr and the documented exit code."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ClientError as exc:
            click.echo(f"mlsvc: {exc}", err=True)
            sys.exit(exit_codes.for_error(exc))

    return wrapper  # type: ignore[return-value]
