"""/forward's share of a worker process (a bulkhead) and of it per user.

A worker process serves every endpoint from one pool of threads (gunicorn ``--threads``). If TorchServe
hangs, each /forward holds its thread until ``TORCHSERVE_TIMEOUT``; without a bound they would take
every thread, and /health, /token, /me and the admin endpoints would queue behind them. So /forward
takes a slot of a semaphore of ``FORWARD_CONCURRENCY`` per process before it calls TorchServe, waiting
at most ``FORWARD_QUEUE_TIMEOUT`` seconds for one: then 503 ``forward_busy`` with ``Retry-After``.
Keep ``FORWARD_CONCURRENCY`` below the thread count so the other endpoints always have threads.

Within that, one user has at most ``FORWARD_USER_CONCURRENCY`` requests in flight per process, declaring
at most ``FORWARD_USER_MEGAPIXELS`` together (a larger request runs only when it is the user's only one);
past either, 429 ``too_many_concurrent``. TorchServe serves its queue first come, first served, so what
one account may have in that queue at once is what another account's image may have to wait behind.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, current_app

from ..errors import APIError

EXTENSION = "forward_capacity"


class Capacity:
    """One process's slots: the bulkhead semaphore and the count of each user's requests in flight."""

    def __init__(self, slots: int, per_user: int, per_user_megapixels: int, wait_s: float) -> None:
        self.slots = threading.BoundedSemaphore(slots)
        self.per_user = per_user
        self.per_user_megapixels = per_user_megapixels
        self.wait_s = wait_s
        self.lock = threading.Lock()
        self.in_flight: Counter[int] = Counter()
        self.megapixels: Counter[int] = Counter()

    def _refuse_user(self, user_id: int, megapixels: int) -> str | None:
        if self.in_flight[user_id] >= self.per_user:
            return f"At most {self.per_user} of your /forward requests run at once"
        if self.in_flight[user_id] and self.megapixels[user_id] + megapixels > self.per_user_megapixels:
            return (
                f"Your /forward requests in flight may declare at most {self.per_user_megapixels} megapixels"
            )
        return None

    @contextmanager
    def admitted(self, user_id: int, megapixels: int, retry_after: int) -> Iterator[None]:
        with self.lock:
            refusal = self._refuse_user(user_id, megapixels)
            if refusal:
                raise APIError(
                    429,
                    "too_many_concurrent",
                    f"{refusal}; retry when one ends.",
                    headers={"Retry-After": "1"},
                )
            self.in_flight[user_id] += 1
            self.megapixels[user_id] += megapixels
        try:
            if not self.slots.acquire(timeout=self.wait_s):
                raise APIError(
                    503,
                    "forward_busy",
                    "Every /forward slot of this server is taken; retry shortly.",
                    headers={"Retry-After": str(retry_after)},
                )
            try:
                yield
            finally:
                self.slots.release()
        finally:
            with self.lock:
                self.in_flight[user_id] -= 1
                self.megapixels[user_id] -= megapixels
                if self.in_flight[user_id] <= 0:
                    del self.in_flight[user_id], self.megapixels[user_id]


def capacity() -> Capacity:
    """This process's ``Capacity`` (made after a fork, never shared with the parent's)."""
    per_pid: dict[int, Capacity] = current_app.extensions[EXTENSION]
    pid = os.getpid()
    found = per_pid.get(pid)
    if found is None:
        config = current_app.config
        found = per_pid.setdefault(
            pid,
            Capacity(
                int(config["FORWARD_CONCURRENCY"]),
                int(config["FORWARD_USER_CONCURRENCY"]),
                int(config["FORWARD_USER_MEGAPIXELS"]),
                float(config["FORWARD_QUEUE_TIMEOUT"]),
            ),
        )
    return found


def init_app(app: Flask) -> None:
    app.extensions[EXTENSION] = {}
