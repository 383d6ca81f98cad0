"""Shadow traffic: a sampled share of the requests that a rollout policy sends to stable is also sent to
the policy's shadow version, after the client has its answer, and the two top-1 classes are compared.

The copy is queued once the response is closed (``call_on_close``), so neither the client's result nor its
latency waits on it. The queue is bounded (``SHADOW_QUEUE_SIZE``, per process): when it is full the copy is
dropped, never waited for, and counted (``api_shadow_requests_total{outcome="dropped"}``). Each copy sent
writes a ``shadow_results`` row: both versions' top-1 class, whether they agree, both latencies.
"""

from __future__ import annotations

import logging
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, after_this_request, current_app

from ..extensions import db, torchserve
from ..ops.counters import SHADOW_REQUESTS
from .rollout_policy import Policy
from .tables import ShadowResult

log = logging.getLogger(__name__)

SHADOW_THREADS = 2
_executor = ThreadPoolExecutor(max_workers=SHADOW_THREADS, thread_name_prefix="shadow")
_slots_lock = threading.Lock()
_in_flight = 0


@dataclass(frozen=True)
class ShadowCopy:
    """What a shadow call needs, taken from the request (the worker thread has no request context)."""

    model: str
    stable_version: str
    shadow_version: str
    image: bytes
    stable_class: int | None
    stable_ms: float
    request_id: str


def _top1(body: Any) -> int | None:
    predictions = body.get("predictions") if isinstance(body, dict) else None
    if predictions and isinstance(predictions[0], dict) and isinstance(predictions[0].get("class_id"), int):
        return int(predictions[0]["class_id"])
    return None


def _take_slot(limit: int) -> bool:
    global _in_flight
    with _slots_lock:
        if _in_flight >= limit:
            return False
        _in_flight += 1
        return True


def _free_slot() -> None:
    global _in_flight
    with _slots_lock:
        _in_flight -= 1


def _run(app: Flask, copy: ShadowCopy) -> None:
    try:
        with app.app_context():
            try:
                answer = torchserve.client.predict(
                    copy.model, copy.shadow_version, copy.image, 1, copy.request_id
                )
                status, shadow_class, shadow_ms = answer.status, _top1(answer.body), answer.elapsed_ms
            except Exception as exc:  # TorchServe down or timing out: the comparison records a failure
                status, shadow_class, shadow_ms = 599, None, None
                log.info("Shadow call to %s %s failed: %s", copy.model, copy.shadow_version, exc)
            ok = status == 200 and shadow_class is not None
            db.session.add(
                ShadowResult(
                    request_id=copy.request_id,
                    model_name=copy.model,
                    stable_version=copy.stable_version,
                    shadow_version=copy.shadow_version,
                    stable_class=copy.stable_class,
                    shadow_class=shadow_class,
                    agree=(shadow_class == copy.stable_class) if ok else None,
                    stable_ms=copy.stable_ms,
                    shadow_ms=shadow_ms,
                    shadow_status=status,
                )
            )
            db.session.commit()
            db.session.remove()
        SHADOW_REQUESTS.labels("answered" if ok else "failed").inc()
    except Exception:
        log.exception("Could not record the shadow comparison of request %s", copy.request_id)
    finally:
        _free_slot()


def offer(policy: Policy | None, stable_answer: Any, image: bytes, stable_ms: float, request_id: str) -> None:
    """After a request that ``policy`` routed to stable and that succeeded: maybe shadow it."""
    if policy is None or not policy.shadow_version or not isinstance(stable_answer, dict):
        return
    if random.random() * 100 >= policy.shadow_percent:
        return
    copy = ShadowCopy(
        model=policy.model,
        stable_version=policy.stable,
        shadow_version=policy.shadow_version,
        image=image,
        stable_class=_top1(stable_answer),
        stable_ms=stable_ms,
        request_id=request_id,
    )
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    limit = int(current_app.config["SHADOW_QUEUE_SIZE"])

    @after_this_request
    def _after(response: Response) -> Response:
        def _queue() -> None:
            if not _take_slot(limit):
                SHADOW_REQUESTS.labels("dropped").inc()
                return
            try:
                _executor.submit(_run, app, copy)
            except RuntimeError:  # interpreter shutting down
                _free_slot()

        response.call_on_close(_queue)
        return response
