"""TorchServe's keys: read from the key file it writes, renewed when they expire.

TorchServe 0.12 enforces token authorization. It writes ``key_file.json`` in its working directory::

    {"management": {"key": "...", "expiration time": "2025-01-01T00:00:00.000Z"},
     "inference":  {"key": "...", "expiration time": "..."},
     "API":        {"key": "..."}}

Inference and management keys expire after ``token_expiration_min`` (default 60); a request with an
expired key is answered 400 ``InvalidKeyException``. The API key does not expire: ``GET
<management>/token?type=inference`` with ``Authorization: Bearer <API key>`` makes TorchServe generate
a new inference key and rewrite the key file (the response body is empty), so we re-read the file.
Several gunicorn workers may notice the expiry at once; renewal is serialized with ``flock`` on the
key file, and a worker that finds a fresh key already there uses it instead of renewing again
(renewing twice would invalidate the key the first worker just got).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

KeyKind = Literal["inference", "management"]
# Renew a little before the stated expiry, so a request does not race the deadline.
EXPIRY_MARGIN_S = 2.0


@dataclass(frozen=True)
class Key:
    value: str
    expires_at: datetime | None

    def expired(self) -> bool:
        if self.expires_at is None:
            return False
        return time.time() >= self.expires_at.timestamp() - EXPIRY_MARGIN_S


def parse_instant(raw: Any) -> datetime | None:
    """Java's ``Instant.toString()``, e.g. ``2024-02-16T21:12:24.801167Z``."""
    if not isinstance(raw, str):
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class KeyStore:
    """Reads TorchServe's key file (cached by mtime) and renews expired keys."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._cache: tuple[tuple[int, int], dict[str, Any]] | None = None

    def _read(self) -> dict[str, Any] | None:
        """The parsed key file, or None when there is none (token authorization disabled)."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        stamp = (stat.st_mtime_ns, stat.st_size)
        if self._cache and self._cache[0] == stamp:
            return self._cache[1]
        # TorchServe rewrites the file in place; a read can land between truncate and write.
        for _ in range(20):
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except (ValueError, OSError):
                time.sleep(0.05)
                continue
            if isinstance(data, dict):
                self._cache = (stamp, data)
                return data
        log.error("TorchServe key file %s is unreadable", self.path)
        return None

    def key(self, kind: KeyKind | Literal["API"]) -> Key | None:
        data = self._read()
        entry = data.get(kind) if data else None
        if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
            return None
        return Key(entry["key"], parse_instant(entry.get("expiration time")))

    def renew(self, kind: KeyKind, stale: str | None, renew_call: Callable[[str], None]) -> Key | None:
        """Get a usable key after ``stale`` failed or expired: another worker's fresh one, or a new one.

        ``renew_call(api_key)`` asks TorchServe for a new key; it runs at most once per stale key
        across all the workers sharing the key file (flock serializes them across processes).
        """
        with self._lock, contextlib.ExitStack() as stack:
            try:
                handle = stack.enter_context(self.path.open("rb"))
            except FileNotFoundError:
                return None
            fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed
            self._cache = None
            current = self.key(kind)
            if current and current.value != stale and not current.expired():
                return current
            api_key = self.key("API")
            if api_key is None:
                return current
            renew_call(api_key.value)
            self._cache = None
            return self.key(kind)
