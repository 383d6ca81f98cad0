"""The schemas of ``/models/<name>/rollout``: the traffic policy, its shadow share and its guard."""

from __future__ import annotations

from typing import Any

from apiflask import Schema
from apiflask.fields import Float, Integer, Nested, String
from apiflask.validators import Range, Regexp
from marshmallow import ValidationError, validates_schema

from ..names import NAME_RE
from ..schema_fields import StrictSchema, UTCDateTime


def _version(**kwargs: Any) -> String:
    return String(validate=Regexp(NAME_RE, error="Not a valid version."), **kwargs)


class ShadowIn(StrictSchema):
    version = _version(required=True, metadata={"example": "2.0"})
    percent = Float(
        required=True,
        validate=Range(0, 100),
        metadata={"description": "share of stable traffic also sent to `version`, 0-100", "example": 20},
    )


class GuardIn(StrictSchema):
    """Automatic rollback: every `interval_s`, over the last `window_s`, the canary's error rate (5xx and
    upstream failures) and p95 latency; `failed_checks` bad checks in a row send all traffic to stable."""

    max_error_rate = Float(load_default=0.05, validate=Range(0, 1), metadata={"example": 0.05})
    max_p95_ms = Float(load_default=5000.0, validate=Range(1, 600_000), metadata={"example": 2000})
    window_s = Integer(load_default=300, validate=Range(5, 86_400), metadata={"example": 300})
    min_samples = Integer(load_default=20, validate=Range(1, 1_000_000), metadata={"example": 20})
    failed_checks = Integer(load_default=3, validate=Range(1, 100), metadata={"example": 3})
    interval_s = Integer(load_default=10, validate=Range(1, 3600), metadata={"example": 10})


class RolloutIn(StrictSchema):
    stable = _version(required=True, metadata={"example": "1.0"})
    canary = _version(required=True, metadata={"example": "2.0"})
    canary_percent = Float(
        required=True, validate=Range(0, 100), metadata={"description": "0-100", "example": 10}
    )
    shadow = Nested(ShadowIn, allow_none=True)
    guard = Nested(GuardIn, allow_none=True)

    @validates_schema
    def _distinct(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("stable") is not None and data.get("stable") == data.get("canary"):
            raise ValidationError("canary must differ from stable.", "canary")
        shadow = data.get("shadow") or {}
        if shadow and shadow.get("version") == data.get("stable"):
            raise ValidationError("The shadow version must differ from stable.", "shadow")


class ShadowOut(Schema):
    version = String()
    percent = Float()


class GuardOut(Schema):
    max_error_rate = Float()
    max_p95_ms = Float()
    window_s = Integer()
    min_samples = Integer()
    failed_checks = Integer()
    interval_s = Integer()


class RolloutState(Schema):
    model = String(metadata={"example": "resnet50"})
    stable = String()
    canary = String()
    canary_percent = Float()
    shadow = Nested(ShadowOut, allow_none=True)
    guard = Nested(GuardOut, allow_none=True)
    state = String(metadata={"description": "canary (split in force) or rolled_back (all to stable)"})
    reason = String(allow_none=True, metadata={"description": "why it was rolled back"})
    failed_checks = Integer(metadata={"description": "the guard's failed checks in a row"})
    last_check_at = UTCDateTime(allow_none=True)
    revision = Integer()
    updated_at = UTCDateTime()
    updated_by = String(allow_none=True)


class RolloutOut(RolloutState):
    """A model's rollout policy and its state."""


class RolloutActionOut(RolloutState):
    """The policy after the change, and what was done."""

    message = String()


def policy_out(policy: Any) -> dict[str, Any]:
    """A ``rollout_policy.Policy`` as ``RolloutOut`` shows it."""
    out = policy.as_dict()
    shadow = out.pop("shadow_version"), out.pop("shadow_percent")
    out["shadow"] = {"version": shadow[0], "percent": shadow[1]} if shadow[0] else None
    return out
