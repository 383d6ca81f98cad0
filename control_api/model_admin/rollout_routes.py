"""``/models/<name>/rollout``: a canary split per model, for admins, every change audited.

- ``PUT``: the policy ``{"stable", "canary", "canary_percent", "shadow"?, "guard"?}``. Both versions must be
  registered with a ready worker. /forward requests that pin no version are then split by a stable hash
  of the user id (``routing.py``); the history row of each records the version that answered.
- ``GET``: the policy and its state (``canary``, or ``rolled_back`` with the reason).
- ``POST .../promote``: the canary becomes the default version and the policy is cleared.
- ``POST .../rollback``: all traffic to stable; the policy stays, in state ``rolled_back``.
- ``DELETE``: clear the policy: unpinned traffic goes to the default version again.
"""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint

from ..audit.trail import audited, note
from ..auth.guards import ADMIN_ERRORS, admin_required
from ..auth.identity import current_user
from ..errors import APIError
from ..tables import utcnow
from . import rollout_policy
from .catalog import describe, make_default, quoted
from .rollout_policy import CANARY, ROLLED_BACK, Policy
from .rollout_schemas import RolloutActionOut, RolloutIn, RolloutOut, policy_out

bp = APIBlueprint("rollouts", __name__, tag="Models")

NOT_FOUND = {404: "No such model, or no rollout policy for it"}


def _target(kwargs: dict[str, Any]) -> str:
    return f"{kwargs.get('name')}/rollout"


def _actor() -> str:
    user = current_user()
    return user.username if user else "anonymous"


def _policy(name: str) -> Policy:
    quoted(name)
    policy = rollout_policy.load(name)
    if policy is None:
        raise APIError(404, "no_rollout", f"{name} has no rollout policy: PUT /models/{name}/rollout.")
    return policy


def _check_versions(name: str, wanted: dict[str, str]) -> None:
    """Every version in ``wanted`` (role -> version) registered, with a ready worker."""
    model = describe(name)  # 404 model_not_found for a model that does not exist
    status = {v["version"]: v["status"] for v in model["versions"]}
    for role, version in wanted.items():
        if version not in status:
            raise APIError(
                422,
                "unknown_version",
                f"The {role} version {version!r} is not registered for {name} "
                f"(registered: {', '.join(sorted(status)) or 'none'}).",
            )
        if status[version] != "READY":
            raise APIError(
                409,
                "no_ready_worker",
                f"{name} {version} has no ready worker: PUT /models/{name}/{version}/workers first.",
            )


@bp.get("/models/<name>/rollout")
@bp.doc(summary="A model's rollout policy", security="BearerAuth", responses={**ADMIN_ERRORS, **NOT_FOUND})
@admin_required
@bp.output(RolloutOut)
def get_rollout(name: str) -> dict[str, Any]:
    return policy_out(_policy(name))


@bp.put("/models/<name>/rollout")
@bp.doc(
    summary="Set a canary split (and optional shadow traffic and rollback guard)",
    security="BearerAuth",
    responses={
        **ADMIN_ERRORS,
        404: "No such model",
        409: "A version has no ready worker",
        422: "Unknown version, percent outside 0-100, canary equal to stable",
    },
)
@admin_required
@audited("model.rollout_set", target=_target)
@bp.input(RolloutIn, location="json")
@bp.output(RolloutOut)
def set_rollout(name: str, json_data: dict[str, Any]) -> dict[str, Any]:
    """Replaces any earlier policy; the guard's count of failed checks starts again."""
    shadow = json_data.get("shadow") or None
    wanted = {"stable": json_data["stable"], "canary": json_data["canary"]}
    if shadow:
        wanted["shadow"] = shadow["version"]
    _check_versions(name, wanted)
    previous = rollout_policy.load(name)
    note(previous=policy_out(previous) if previous else None)
    values = {
        "stable": json_data["stable"],
        "canary": json_data["canary"],
        "canary_percent": float(json_data["canary_percent"]),
        "shadow_version": shadow["version"] if shadow else None,
        "shadow_percent": float(shadow["percent"]) if shadow else 0.0,
        "guard": json_data.get("guard") or None,
    }
    return policy_out(rollout_policy.save(name, values, _actor()))


@bp.post("/models/<name>/rollout/promote")
@bp.doc(
    summary="Promote the canary: make it the default version and clear the policy",
    security="BearerAuth",
    responses={
        **ADMIN_ERRORS,
        **NOT_FOUND,
        409: "No canary in force (rolled back), or it has no ready worker",
    },
)
@admin_required
@audited("model.rollout_promote", target=_target)
@bp.output(RolloutActionOut)
def promote(name: str) -> dict[str, Any]:
    policy = _policy(name)
    note(policy=policy_out(policy))
    if policy.state != CANARY:
        raise APIError(
            409,
            "no_canary",
            f"{name}'s canary {policy.canary} was rolled back ({policy.reason}); set a new policy first.",
        )
    previous = make_default(name, policy.canary)
    rollout_policy.delete(name)
    message = f"{policy.canary} is now the default version of {name} (was {previous}); the policy is cleared."
    return {**policy_out(policy), "message": message}


@bp.post("/models/<name>/rollout/rollback")
@bp.doc(
    summary="Roll back: send all traffic to the stable version",
    security="BearerAuth",
    responses={**ADMIN_ERRORS, **NOT_FOUND, 409: "Already rolled back"},
)
@admin_required
@audited("model.rollout_rollback", target=_target)
@bp.output(RolloutActionOut)
def rollback(name: str) -> dict[str, Any]:
    policy = _policy(name)
    if policy.state == ROLLED_BACK:
        raise APIError(409, "already_rolled_back", f"{name} is already rolled back ({policy.reason}).")
    reason = f"rolled back by {_actor()}"
    if not rollout_policy.update_if_unchanged(
        name, policy.revision, state=ROLLED_BACK, reason=reason, updated_at=utcnow(), updated_by=_actor()
    ):
        raise APIError(409, "rollout_changed", f"{name}'s policy changed meanwhile; read it and retry.")
    after = _policy(name)
    return {**policy_out(after), "message": f"All of {name}'s traffic goes to {policy.stable}."}


@bp.delete("/models/<name>/rollout")
@bp.doc(
    summary="Clear a model's rollout policy", security="BearerAuth", responses={**ADMIN_ERRORS, **NOT_FOUND}
)
@admin_required
@audited("model.rollout_clear", target=_target)
@bp.output(RolloutActionOut)
def clear_rollout(name: str) -> dict[str, Any]:
    policy = _policy(name)
    rollout_policy.delete(name)
    return {**policy_out(policy), "message": f"{name}'s unpinned traffic goes to its default version again."}
