"""Model management for admins: a safe, audited front to TorchServe's management API.

- ``GET /models``: for any signed-in user, names, versions, the default version and status; admins also
  get workers, batching and the rollout policy, as ``GET /models/<name>`` gives them.
- ``POST /models``: register an archive from the model store, synchronously: the workers are up when it
  answers (TorchServe's own default is 0 workers, a model that answers 503).
- ``PUT /models/<name>/<version>/default``: make a version the default. Refused while that version has no
  ready worker, so that /forward traffic never lands on a version that cannot answer.
- ``PUT /models/<name>/<version>/workers`` ``{"min", "max"}``: scale, synchronously. The default version
  cannot be scaled to 0.
- ``DELETE /models/<name>/<version>``: unregister. The default version can go only when it is the last one.

The archive checks are store.py's; TorchServe's answers are mapped to our errors by catalog.py and
torchserve/answers.py, never passed on raw.
"""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import current_app

from ..audit.trail import audited, note, set_target
from ..auth.guards import ADMIN_ERRORS, TOKEN_ERRORS, admin_required, token_required
from ..auth.identity import current_user
from ..errors import APIError
from ..torchserve.answers import UPSTREAM_ERRORS, explanation
from . import desired_state, rollout_policy
from .catalog import call, describe, failure, find_version, make_default, model_names, quoted
from .rollout_schemas import policy_out
from .schemas import ModelActionOut, ModelDetailOut, ModelList, RegisterModelIn, WorkersIn
from .store import archive_path, manifest

bp = APIBlueprint("models", __name__, tag="Models")


def _target(kwargs: dict[str, Any]) -> str:
    return f"{kwargs.get('name')}/{kwargs.get('version')}"


def _check_worker_cap(workers: int) -> None:
    cap = int(current_app.config["MAX_MODEL_WORKERS"])
    if workers > cap:
        raise APIError(
            422,
            "too_many_workers",
            f"{workers} workers asked; this deployment allows at most {cap} (MAX_MODEL_WORKERS).",
        )


def _with_rollout(model: dict[str, Any]) -> dict[str, Any]:
    policy = rollout_policy.load(model["name"])
    return {**model, "rollout": policy_out(policy) if policy else None}


def _reduced(model: dict[str, Any]) -> dict[str, Any]:
    """What every signed-in user may see of a model: names, versions, the default, status."""
    versions = [{k: v[k] for k in ("version", "is_default", "status")} for v in model["versions"]]
    return {"name": model["name"], "default_version": model["default_version"], "versions": versions}


@bp.get("/models")
@bp.doc(
    summary="List the registered models and their versions",
    description="Any signed-in user gets names, versions, the default version and status; admins also get "
    "workers, batching, archives and the rollout policy.",
    security="BearerAuth",
    responses={**TOKEN_ERRORS, **UPSTREAM_ERRORS},
)
@token_required
@bp.output(ModelList)
def list_models() -> dict[str, Any]:
    """Every model with its versions and default version (and, for admins, workers and batch settings)."""
    user = current_user()
    models = []
    for name in model_names():
        try:
            model = describe(name)
        except APIError as exc:
            if exc.status_code != 404:  # unregistered since it was listed: skip it
                raise
            continue
        models.append(_with_rollout(model) if user and user.is_admin else _reduced(model))
    return {"models": models}


@bp.get("/models/<name>")
@bp.doc(
    summary="Describe a model: versions, default, workers, batching, rollout policy",
    security="BearerAuth",
    responses={**ADMIN_ERRORS, **UPSTREAM_ERRORS, 404: "No such model"},
)
@admin_required
@bp.output(ModelDetailOut)
def get_model(name: str) -> dict[str, Any]:
    return _with_rollout(describe(name))


@bp.post("/models")
@bp.doc(
    summary="Register a model archive from the model store",
    security="BearerAuth",
    responses={
        **ADMIN_ERRORS,
        **UPSTREAM_ERRORS,
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
    path = archive_path(json_data["archive"])
    name, version = manifest(path)
    set_target(f"{name}/{version}")
    params: dict[str, Any] = {
        "url": path.name,
        "initial_workers": json_data["initial_workers"],
        "synchronous": "true",
    }
    for field in ("batch_size", "max_batch_delay", "response_timeout"):
        if json_data.get(field) is not None:
            params[field] = json_data[field]
    result = call("POST", "/models", params, slow=True)
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
            502, "model_load_failed", f"TorchServe could not start {name} {version}: {explanation(result)}"
        )
    if result.status != 200:
        raise failure(result, f"Model {name!r} version {version!r}")
    note(torchserve=explanation(result))
    desired_state.registered(name, version, path.name, json_data)
    return {**describe(name), "message": explanation(result)}


@bp.put("/models/<name>/<version>/default")
@bp.doc(
    summary="Make a version the default (what /forward uses when no version is asked for)",
    security="BearerAuth",
    responses={
        **ADMIN_ERRORS,
        **UPSTREAM_ERRORS,
        404: "No such model or version",
        409: "That version has no ready worker",
    },
)
@admin_required
@audited("model.set_default", target=_target)
@bp.output(ModelActionOut)
def set_default(name: str, version: str) -> dict[str, Any]:
    previous = make_default(name, version)
    return {**describe(name), "message": f"The default version of {name} is now {version} (was {previous})."}


@bp.put("/models/<name>/<version>/workers")
@bp.doc(
    summary="Scale a version's workers (synchronous)",
    security="BearerAuth",
    responses={
        **ADMIN_ERRORS,
        **UPSTREAM_ERRORS,
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
    quoted(version, "version")
    model = describe(name)
    entry = find_version(model, version)
    note(previous={"min": entry["min_workers"], "max": entry["max_workers"]})
    if low == 0 and version == model["default_version"]:
        raise APIError(
            409,
            "default_version",
            f"{version} is the default version of {name}: with min 0 /forward could find no worker. "
            "Make another version the default first.",
        )
    params = {"min_worker": low, "max_worker": high, "synchronous": "true"}
    result = call("PUT", f"/models/{quoted(name)}/{quoted(version, 'version')}", params, slow=True)
    if result.status != 200:
        raise failure(result, f"Model {name!r} version {version!r}")
    desired_state.scaled(name, version, low, high)
    return {**describe(name), "message": explanation(result)}


@bp.delete("/models/<name>/<version>")
@bp.doc(
    summary="Unregister a version",
    security="BearerAuth",
    responses={
        **ADMIN_ERRORS,
        **UPSTREAM_ERRORS,
        404: "No such model or version",
        409: "It is the default version and other versions exist, or a rollout policy uses it",
    },
)
@admin_required
@audited("model.unregister", target=_target)
@bp.output(ModelActionOut)
def unregister(name: str, version: str) -> dict[str, Any]:
    quoted(version, "version")
    model = describe(name)
    find_version(model, version)
    others = [v["version"] for v in model["versions"] if v["version"] != version]
    policy = rollout_policy.load(name)
    if policy is not None and version in (policy.stable, policy.canary, policy.shadow_version):
        raise APIError(
            409,
            "in_rollout",
            f"{name}'s rollout policy uses {version}: promote, or clear it (DELETE /models/{name}/rollout).",
        )
    if version == model["default_version"] and others:
        raise APIError(
            409,
            "default_version",
            f"{version} is the default version of {name}, and other versions exist ({', '.join(others)}). "
            f"Set another default first: PUT /models/{name}/<version>/default.",
        )
    result = call("DELETE", f"/models/{quoted(name)}/{quoted(version, 'version')}", slow=True)
    if result.status != 200:
        raise failure(result, f"Model {name!r} version {version!r}")
    desired_state.forget(name, version)
    message = f"{name} {version} is unregistered."
    if not others:
        return {"name": name, "default_version": None, "versions": [], "message": message}
    return {**describe(name), "message": message}
