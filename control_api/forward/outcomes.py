"""Each image's outcome, and /forward's answer for them all.

An image's outcome is its classification or its error, returned rather than raised, so that one bad
image in a batch fails alone. A single image's error is the request's error; a batch answers 200 with
each file's result or error, in upload order, unless every file failed the same way for a reason that
concerns the whole request (TorchServe down, model unknown): then that is the one answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import APIError
from ..ops import counters
from ..ops.counters import UNKNOWN
from ..torchserve.answers import (
    HANDLER_ERRORS,
    UpstreamError,
    UpstreamResponse,
    api_error,
    not_understood,
)
from ..torchserve.client import TorchServeClient
from .history_entry import ForwardLog
from .uploads import Upload

# Statuses that concern the whole request (TorchServe or the model), not one image.
REQUEST_LEVEL = frozenset({404, 502, 503, 504})

Outcome = tuple[dict[str, Any] | APIError, float]


@dataclass(frozen=True)
class Target:
    """Where and how to classify: everything a pool thread needs (it has no app context)."""

    model: str
    version: str | None
    top_k: int
    retry_after: int
    request_id: str

    @property
    def subject(self) -> str:
        """The model as our messages name it."""
        if self.version:
            return f"Model {self.model!r} version {self.version!r}"
        return f"Model {self.model!r}"


def classify(client: TorchServeClient, target: Target, upload: Upload) -> Outcome:
    """One image: (classification, upstream ms), or (APIError, ms)."""
    if not upload.size:
        return APIError(400, "empty_input", "The file is empty."), 0.0
    try:
        result = client.predict(target.model, target.version, upload.data, target.top_k, target.request_id)
    except UpstreamError as exc:
        return _error(exc, target), 0.0
    if result.status != 200:
        return _error(result, target), result.elapsed_ms
    body = result.body
    if not (isinstance(body, dict) and isinstance(body.get("predictions"), list) and "image" in body):
        counters.UPSTREAM_ERRORS.labels("bad_answer").inc()
        return not_understood("answer"), result.elapsed_ms
    classification = {
        "model": body.get("model") or {"name": target.model, "version": target.version},
        "predictions": body["predictions"],
        "image": {**(body.get("image") or {}), "size_bytes": upload.size},
    }
    return classification, result.elapsed_ms


def recorded_names(
    target: Target, outcomes: list[Outcome], default_model: str, routed: bool = False
) -> tuple[str, str | None]:
    """The model and version names the history row may keep: the ones asked for once TorchServe
    confirmed them (it classified an image, or our handler refused one), the configured default model
    always, the ones an admin's rollout policy chose (``routed``: the guard counts their failures),
    ``unknown`` for anything else. Clients cannot grow the stats rollup by inventing names."""
    statuses = [item.status_code if isinstance(item, APIError) else 200 for item, _ in outcomes]
    asked_version = UNKNOWN if target.version else None
    if 404 in statuses:
        return UNKNOWN, asked_version
    if routed:
        return target.model, target.version
    confirmed = any(status == 200 or status in HANDLER_ERRORS for status in statuses)
    model = target.model if confirmed or target.model == default_model else UNKNOWN
    return model, (target.version if confirmed else asked_version)


def _error(answer: UpstreamResponse | UpstreamError, target: Target) -> APIError:
    return api_error(answer, context="prediction", subject=target.subject, retry_after=target.retry_after)


def _top1(item: Any) -> Any:
    if isinstance(item, APIError):
        return {"error": item.slug, "status": item.status_code}
    predictions = item.get("predictions") or []
    return predictions[0] if predictions else None


def answer(entry: ForwardLog, outcomes: list[Outcome]) -> dict[str, Any]:
    """The response body (or the APIError raised) for the request's outcomes; fills in the history entry."""
    items = [item for item, _ in outcomes]
    for item in items:
        if isinstance(item, dict) and item["model"].get("version"):
            entry.model_version = str(item["model"]["version"])
            break
    if len(items) == 1:
        return _single(entry, items[0])
    return _batch(entry, outcomes)


def _single(entry: ForwardLog, item: Any) -> dict[str, Any]:
    if isinstance(item, APIError):
        raise item
    entry.result = _top1(item)
    entry.width, entry.height = item["image"].get("width"), item["image"].get("height")
    return {"request_id": entry.request_id, **item, "processing_time_ms": round(entry.elapsed_ms(), 3)}


def _batch(entry: ForwardLog, outcomes: list[Outcome]) -> dict[str, Any]:
    items = [item for item, _ in outcomes]
    errors = [item for item in items if isinstance(item, APIError)]
    # TorchServe down, model unknown, ...: one answer for the request, not the same error per file.
    statuses = {e.status_code for e in errors}
    if len(errors) == len(items) and len(statuses) == 1 and statuses <= REQUEST_LEVEL:
        raise errors[0]
    entry.result = [_top1(item) for item in items]
    results: list[dict[str, Any]] = []
    for item, upstream_ms in outcomes:
        if isinstance(item, APIError):
            results.append({"error": item.slug, "message": item.message, "status": item.status_code})
        else:
            results.append(
                {"request_id": entry.request_id, **item, "processing_time_ms": round(upstream_ms, 3)}
            )
    return {
        "request_id": entry.request_id,
        "results": results,
        "processing_time_ms": round(entry.elapsed_ms(), 3),
    }
