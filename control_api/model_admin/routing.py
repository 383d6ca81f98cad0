"""Which version answers a /forward request that does not pin one: the model's rollout policy, split by
a stable hash of the user id.

A user's bucket (0-9999) is the SHA-256 of the model name and their id, so a user keeps their version for
as long as the split holds (and across workers, replicas and restarts: no state but the policy); a user
lands in the canary when their bucket is below ``canary_percent`` hundredths. Different models split
their users independently.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .rollout_policy import Policy, cached

BUCKETS = 10_000


def bucket(model: str, user_id: int | None) -> int:
    """The user's bucket for ``model``, in [0, BUCKETS)."""
    digest = hashlib.sha256(f"{model}\x00{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def version_for(policy: Policy, user_id: int | None) -> str:
    """The version ``policy`` sends this user to: the canary for their share, else stable."""
    if policy.splitting and bucket(policy.model, user_id) < policy.canary_percent * BUCKETS / 100:
        return policy.canary
    return policy.stable


@dataclass(frozen=True)
class Route:
    """Where an unpinned request goes, and the policy that decided (None: TorchServe's default)."""

    version: str | None
    policy: Policy | None = None

    @property
    def to_stable(self) -> bool:
        return self.policy is not None and self.version == self.policy.stable


def route(model: str, user_id: int | None) -> Route:
    """The version for an unpinned request to ``model`` by this user."""
    policy = cached(model)
    if policy is None:
        return Route(None)
    return Route(version_for(policy, user_id), policy)
