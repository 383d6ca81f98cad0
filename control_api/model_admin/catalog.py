"""TorchServe's management API as the /models endpoints see it: calls with our error mapping, and
TorchServe's description of a model translated into our catalog entry (versions, default, workers)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from flask import current_app

from ..audit.trail import note
from ..errors import APIError
from ..extensions import torchserve
from ..names import is_name
from ..ops.request_tracking import current_request_id
from ..torchserve.answers import UpstreamError, UpstreamResponse, api_error, not_understood
from . import desired_state

MAX_PAGES = 100


def failure(answer: UpstreamResponse | UpstreamError, subject: str) -> APIError:
    """A management call that failed, in our terms. ``subject`` names the model (version)."""
    retry_after = int(current_app.config["RETRY_AFTER_SECONDS"])
    return api_error(answer, context="management", subject=subject, retry_after=retry_after)


def call(
    method: str, path: str, params: dict[str, Any] | None = None, slow: bool = False
) -> UpstreamResponse:
    """One management call (``path`` already quoted); ``slow`` for those that wait on workers."""
    try:
        return torchserve.client.manage(method, path, params, request_id=current_request_id(), slow=slow)
    except UpstreamError as exc:
        raise failure(exc, path) from exc


def quoted(value: str, what: str = "model") -> str:
    """A model or version name from the URL, quoted for TorchServe's; one that cannot exist is a 404."""
    if not is_name(value):
        raise APIError(404, "model_not_found", f"No {what} is called {value!r}.")
    return quote(value, safe="")


def model_names() -> list[str]:
    """Every registered model's name, following TorchServe's pages."""
    names: list[str] = []
    token: str | None = None
    for _ in range(MAX_PAGES):
        params: dict[str, Any] = {"limit": 100, **({"next_page_token": token} if token else {})}
        result = call("GET", "/models", params)
        if result.status != 200 or not isinstance(result.body, dict):
            raise failure(result, "The model list")
        names += [str(m.get("modelName")) for m in result.body.get("models") or [] if isinstance(m, dict)]
        token = result.body.get("nextPageToken")
        if not token:
            break
    return names


def _worker(raw: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(raw.get("id")),
        "status": raw.get("status"),
        "pid": raw.get("pid"),
        "start_time": raw.get("startTime"),
        "memory_usage": raw.get("memoryUsage"),
        "gpu": raw.get("gpu"),
    }


def _version(raw: dict[str, Any], default: str | None) -> dict[str, Any]:
    workers = [_worker(w) for w in raw.get("workers") or [] if isinstance(w, dict)]
    statuses = [w["status"] for w in workers]
    if "READY" in statuses:
        status = "READY"
    elif workers:
        status = str(statuses[0] or "LOADING")
    else:
        status = "UNAVAILABLE"
    queue = raw.get("jobQueueStatus") or {}
    return {
        "version": raw.get("modelVersion"),
        "is_default": raw.get("modelVersion") == default,
        "archive": raw.get("modelUrl"),
        "status": status,
        "min_workers": raw.get("minWorkers"),
        "max_workers": raw.get("maxWorkers"),
        "batch_size": raw.get("batchSize"),
        "max_batch_delay_ms": raw.get("maxBatchDelay"),
        "response_timeout_s": raw.get("responseTimeout"),
        "device_type": raw.get("deviceType"),
        "workers": workers,
        "pending_requests": queue.get("pendingRequests") if isinstance(queue, dict) else None,
    }


def describe(name: str) -> dict[str, Any]:
    """The model's versions (GET /models/<name>/all) and which is the default (GET /models/<name>)."""
    name_in_path = quoted(name)
    default = call("GET", f"/models/{name_in_path}")
    if default.status != 200:
        raise failure(default, f"Model {name!r}")
    every = call("GET", f"/models/{name_in_path}/all")
    if every.status != 200:
        raise failure(every, f"Model {name!r}")
    if not (isinstance(default.body, list) and default.body and isinstance(every.body, list)):
        raise not_understood("model description")
    default_version = default.body[0].get("modelVersion")
    versions = [_version(raw, default_version) for raw in every.body if isinstance(raw, dict)]
    return {"name": name, "default_version": default_version, "versions": versions}


def find_version(model: dict[str, Any], version: str) -> dict[str, Any]:
    """The catalog entry of one of ``model``'s versions; 404 when it has no such version."""
    for entry in model["versions"]:
        if entry["version"] == version:
            return entry
    raise APIError(404, "model_not_found", f"Model {model['name']!r} has no version {version!r}.")


def make_default(name: str, version: str) -> str | None:
    """Make ``version`` the default (refused, 409, while it has no ready worker); returns the previous one."""
    quoted(version, "version")
    model = describe(name)
    entry = find_version(model, version)
    previous: str | None = model["default_version"]
    note(previous_default=previous)
    if entry["status"] != "READY" and version != previous:
        raise APIError(
            409,
            "no_ready_worker",
            f"{name} {version} has no ready worker, so it could not answer /forward. Scale it first: "
            f"PUT /models/{name}/{version}/workers.",
        )
    result = call("PUT", f"/models/{quoted(name)}/{quoted(version, 'version')}/set-default")
    if result.status != 200:
        raise failure(result, f"Model {name!r} version {version!r}")
    desired_state.made_default(name, version)
    return previous
