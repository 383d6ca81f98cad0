"""The /health answer's schema."""

from __future__ import annotations

from apiflask import Schema
from apiflask.fields import String


class HealthOut(Schema):
    status = String(metadata={"example": "ok"})
    database = String(metadata={"example": "ok"})
    torchserve = String(metadata={"example": "ok"})
    error = String(metadata={"description": "only when unhealthy"})
    message = String(metadata={"description": "only when unhealthy: which part failed and why"})
