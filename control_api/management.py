"""Model management for admins: a safe, audited front to TorchServe's management API.

- ``GET /models``, ``GET /models/<name>``: versions, the default version, workers and their status, batching.
- ``POST /models``: register an archive from the model store, synchronously: the workers are up when it
  answers (TorchServe's own default is 0 workers, a model that answers 503).
- ``PUT /models/<name>/<version>/default``: make a version the default. Refused while that version has no
  ready worker, so that /forward traffic never lands on a version that cannot answer.
- ``PUT /models/<name>/<version>/workers`` ``{"min", "max"}``: scale, synchronously. The default version
  cannot be scaled to 0.
- ``DELETE /models/<name>/<version>``: unregister. The default version can go only when it is the last one.

``archive`` must be a plain ``*.mar`` file name present in ``MODEL_STORE`` (the same directory TorchServe
serves, mounted read-only here): no URL (TorchServe would download it), no path, nothing outside the store.
The archive's manifest is read first, so the audit row names the model and version even when TorchServe
then refuses it. TorchServe's answers are mapped to our error shape; its raw body is never passed on.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

from apiflask import APIBlueprint
from flask import current_app

from .audit import audited, note, set_target
from .auth import admin_required
from .errors import ADMIN_ERRORS, APIError
from .extensions import torchserve
from .observability import current_request_id
from .schemas import (
    ARCHIVE_RE,
    NAME_RE,
    ModelActionOut,
    ModelDetailOut,
    ModelList,
    RegisterModelIn,
    WorkersIn,
)
from .torchserve import UpstreamError, UpstreamResponse

bp = APIBlueprint("models", __name__, tag="Models")

MAX_PAGES = 100
MAX_LISTED_ARCHIVES = 20


def _target(kwargs: dict[str, Any]) -> str:
    return f"{kwargs.get('name')}/{kwargs.get('version')}"


# --- Talking to TorchServe. ------------------------------------------------------------------------------


def _retry_after() -> dict[str, str]:
    return {"Retry-After": str(current_app.config["RETRY_AFTER_SECONDS"])}


def _call(
    method: str, path: str, params: dict[str, Any] | None = None, slow: bool = False
) -> UpstreamResponse:
    try:
        return torchserve.client.manage(method, path, params, request_id=current_request_id(), slow=slow)
    except UpstreamError as exc:
        headers = _retry_after() if exc.status == 503 else None
        raise APIError(exc.status, exc.slug, exc.message, headers=headers) from exc


def _message(result: UpstreamResponse) -> str:
    """TorchServe's explanation, bounded, for our messages: the message of its JSON answer, never its
    body as such (an HTML error page, a proxy's text)."""
    body = result.body
    text = (body.get("message") or body.get("status")) if isinstance(body, dict) else None
    return " ".join(str(text or f"HTTP {result.status}").split())[:300]


def _failure(result: UpstreamResponse, what: str) -> APIError:
    """A management answer that is not 200, in our terms. ``what`` names the model (version)."""
    status, message = result.status, _message(result)
    if status == 404:
        return APIError(404, "model_not_found", f"{what} is not registered.")
    if status == 409:
        return APIError(409, "conflict", f"TorchServe refused: {message}")
    if status == 403:  # InvalidModelVersionException: e.g. removing the default version
        return APIError(409, "default_version", f"TorchServe refused: {message}")
    if status == 400:
        return APIError(422, "rejected_by_torchserve", f"TorchServe refused the request: {message}")
    if status in (503, 507):
        return APIError(
            503, "torchserve_unavailable", f"TorchServe cannot do it now: {message}", headers=_retry_after()
        )
    if status in (408, 504):
        return APIError(504, "torchserve_timeout", f"TorchServe timed out: {message}")
    return APIError(502, "torchserve_error", f"TorchServe failed (HTTP {status}): {message}")


def _name(value: str, what: str = "model") -> str:
    """A model or version name from the URL, quoted for TorchServe's; one that cannot exist is a 404."""
    if not re.match(NAME_RE, value):
        raise APIError(404, "model_not_found", f"No {what} is called {value!r}.")
    return quote(value, safe="")


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
    quoted = _name(name)
    default = _call("GET", f"/models/{quoted}")
    if default.status != 200:
        raise _failure(default, f"Model {name!r}")
    every = _call("GET", f"/models/{quoted}/all")
    if every.status != 200:
        raise _failure(every, f"Model {name!r}")
    if not (isinstance(default.body, list) and default.body and isinstance(every.body, list)):
        raise APIError(502, "upstream_error", "TorchServe's model description was not understood.")
    default_version = default.body[0].get("modelVersion")
    versions = [_version(raw, default_version) for raw in every.body if isinstance(raw, dict)]
    return {"name": name, "default_version": default_version, "versions": versions}


def _find(model: dict[str, Any], version: str) -> dict[str, Any]:
    for entry in model["versions"]:
        if entry["version"] == version:
            return entry
    raise APIError(404, "model_not_found", f"Model {model['name']!r} has no version {version!r}.")


# --- The model store. ------------------------------------------------------------------------------------


def _store() -> Path:
    store = Path(current_app.config["MODEL_STORE"]).resolve()
    if not store.is_dir():
        raise APIError(
            503,
            "model_store_unavailable",
            "The model store is not available to the API (MODEL_STORE must be the directory TorchServe "
            "serves its archives from).",
        )
    return store


def _archive(archive: str) -> Path:
    """The archive's path in the store; 422 when there is no such plain file directly in it."""
    if not re.match(ARCHIVE_RE, archive):  # the schema checked it already; this keeps the guard local
        raise APIError(422, "invalid_archive_name", "A .mar file name in the model store, nothing else.")
    store = _store()
    path = (store / archive).resolve()
    if path.parent != store or not path.is_file():
        available = sorted(p.name for p in store.glob("*.mar") if p.is_file())[:MAX_LISTED_ARCHIVES]
        raise APIError(
            422,
            "archive_not_found",
            f"No archive {archive!r} in the model store. Available: {', '.join(available) or 'none'}.",
        )
    return path


def _manifest(path: Path) -> tuple[str, str]:
    """(model name, version) from the archive's MAR-INF/MANIFEST.json."""
    try:
        with zipfile.ZipFile(path) as mar:
            manifest = json.loads(mar.read("MAR-INF/MANIFEST.json"))
        model = manifest["model"]
        name, version = str(model["modelName"]), str(model["modelVersion"])
    except (zipfile.BadZipFile, KeyError, TypeError, ValueError, OSError) as exc:
        raise APIError(
            422, "invalid_archive", f"{path.name} is not a model archive with a readable manifest."
        ) from exc
    if not re.match(NAME_RE, name) or not re.match(NAME_RE, version):
        raise APIError(422, "invalid_archive", f"{path.name} names its model or version unusably.")
    return name, version


def _check_worker_cap(workers: int) -> None:
    cap = int(current_app.config["MAX_MODEL_WORKERS"])
    if workers > cap:
        raise APIError(
            422,
            "too_many_workers",
            f"{workers} workers asked; this deployment allows at most {cap} (MAX_MODEL_WORKERS).",
        )


# --- Endpoints. ------------------------------------------------------------------------------------------


@bp.get("/models")
@bp.doc(
    summary="List the registered models and their versions", security="BearerAuth", responses=ADMIN_ERRORS
)
@admin_required
@bp.output(ModelList)
def list_models() -> dict[str, Any]:
    """Every model with its versions, default version, workers and batch settings."""
    names: list[str] = []
    token: str | None = None
    for _ in range(MAX_PAGES):
        params: dict[str, Any] = {"limit": 100, **({"next_page_token": token} if token else {})}
        result = _call("GET", "/models", params)
        if result.status != 200 or not isinstance(result.body, dict):
            raise _failure(result, "The model list")
        names += [str(m.get("modelName")) for m in result.body.get("models") or [] if isinstance(m, dict)]
        token = result.body.get("nextPageToken")
        if not token:
            break
    models = []
    for name in names:
        try:
            models.append(describe(name))
        except APIError as exc:
            if exc.status_code != 404:  # unregistered since it was listed: skip it
                raise
    return {"models": models}


@bp.get("/models/<name>")
@bp.doc(
    summary="Describe a model: versions, default, workers, batching",
    security="BearerAuth",
    responses={**ADMIN_ERRORS, 404: "No such model"},
)
@admin_required
@bp.output(ModelDetailOut)
def get_model(name: str) -> dict[str, Any]:
    return describe(name)


@bp.post("/models")
@bp.doc(
    summary="Register a model archive from the model store",
    security="BearerAuth",
    responses={
        **ADMIN_ERRORS,
        409: "That model version is already registered",
        422: "Not a plain .mar name in the model store, or an archive TorchServe refuses",
        502: "TorchServe could not start the model's workers",
        503: "TorchServe unavailable or out of resources (see Retry-After)",
    },
)
@admin_required
@audited("model.register")
@bp.input(RegisterModelIn, location="json")
@bp.output(ModelActionOut, status_code=201)
def register_model(json_data: dict[str, Any]) -> dict[str, Any]:
    """Synchronous: answers once `initial_workers` workers (default 1) have loaded the model."""
    _check_worker_cap(json_data["initial_workers"])
    path = _archive(json_data["archive"])
    name, version = _manifest(path)
    set_target(f"{name}/{version}")
    params: dict[str, Any] = {
        "url": path.name,
        "initial_workers": json_data["initial_workers"],
        "synchronous": "true",
    }
    for field in ("batch_size", "max_batch_delay", "response_timeout"):
        if json_data.get(field) is not None:
            params[field] = json_data[field]
    result = _call("POST", "/models", params, slow=True)
    if result.status == 409:
        raise APIError(
            409,
            "model_version_exists",
            f"{name} version {version} is already registered. Unregister it first, or build the archive "
            "with another --version.",
        )
    if result.status == 404:
        raise APIError(
            422,
            "archive_not_found",
            f"TorchServe cannot find {path.name} in its model store: MODEL_STORE must be the same directory.",
        )
    if result.status >= 500 and result.status not in (503, 504, 507):
        raise APIError(
            502, "model_load_failed", f"TorchServe could not start {name} {version}: {_message(result)}"
        )
    if result.status != 200:
        raise _failure(result, f"Model {name!r} version {version!r}")
    note(torchserve=_message(result))
    return {**describe(name), "message": _message(result)}


@bp.put("/models/<name>/<version>/default")
@bp.doc(
    summary="Make a version the default (what /forward uses when no version is asked for)",
    security="BearerAuth",
    responses={**ADMIN_ERRORS, 404: "No such model or version", 409: "That version has no ready worker"},
)
@admin_required
@audited("model.set_default", target=_target)
@bp.output(ModelActionOut)
def set_default(name: str, version: str) -> dict[str, Any]:
    _name(version, "version")
    model = describe(name)
    entry = _find(model, version)
    previous = model["default_version"]
    note(previous_default=previous)
    if entry["status"] != "READY" and version != previous:
        raise APIError(
            409,
            "no_ready_worker",
            f"{name} {version} has no ready worker, so it could not answer /forward. Scale it first: "
            f"PUT /models/{name}/{version}/workers.",
        )
    result = _call("PUT", f"/models/{_name(name)}/{_name(version, 'version')}/set-default")
    if result.status != 200:
        raise _failure(result, f"Model {name!r} version {version!r}")
    return {**describe(name), "message": f"The default version of {name} is now {version} (was {previous})."}


@bp.put("/models/<name>/<version>/workers")
@bp.doc(
    summary="Scale a version's workers (synchronous)",
    security="BearerAuth",
    responses={
        **ADMIN_ERRORS,
        404: "No such model or version",
        409: "Scaling the default version to 0",
        422: "Bad min/max",
    },
)
@admin_required
@audited("model.scale", target=_target)
@bp.input(WorkersIn, location="json")
@bp.output(ModelActionOut)
def scale_workers(name: str, version: str, json_data: dict[str, Any]) -> dict[str, Any]:
    low, high = json_data["min"], json_data["max"]
    _check_worker_cap(high)
    _name(version, "version")
    model = describe(name)
    entry = _find(model, version)
    note(previous={"min": entry["min_workers"], "max": entry["max_workers"]})
    if low == 0 and version == model["default_version"]:
        raise APIError(
            409,
            "default_version",
            f"{version} is the default version of {name}: with min 0 /forward could find no worker. "
            "Make another version the default first.",
        )
    params = {"min_worker": low, "max_worker": high, "synchronous": "true"}
    result = _call("PUT", f"/models/{_name(name)}/{_name(version, 'version')}", params, slow=True)
    if result.status != 200:
        raise _failure(result, f"Model {name!r} version {version!r}")
    return {**describe(name), "message": _message(result)}


@bp.delete("/models/<name>/<version>")
@bp.doc(
    summary="Unregister a version",
    security="BearerAuth",
    responses={
        **ADMIN_ERRORS,
        404: "No such model or version",
        409: "It is the default version and other versions exist",
    },
)
@admin_required
@audited("model.unregister", target=_target)
@bp.output(ModelActionOut)
def unregister(name: str, version: str) -> dict[str, Any]:
    _name(version, "version")
    model = describe(name)
    _find(model, version)
    others = [v["version"] for v in model["versions"] if v["version"] != version]
    if version == model["default_version"] and others:
        raise APIError(
            409,
            "default_version",
            f"{version} is the default version of {name}, and other versions exist ({', '.join(others)}). "
            f"Set another default first: PUT /models/{name}/<version>/default.",
        )
    result = _call("DELETE", f"/models/{_name(name)}/{_name(version, 'version')}", slow=True)
    if result.status != 200:
        raise _failure(result, f"Model {name!r} version {version!r}")
    message = f"{name} {version} is unregistered."
    if not others:
        return {"name": name, "default_version": None, "versions": [], "message": message}
    return {**describe(name), "message": message}
