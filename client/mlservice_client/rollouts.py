"""The admins' rollout calls of ``Client``: a model's canary split, its promotion or rollback, and two
versions compared side by side. Every method answers the API's JSON; non-admins get
``PermissionDeniedError`` (``admin_required``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from .transport import Transport


class RolloutMethods:
    """Mixed into ``Client``."""

    _transport: Transport

    def rollout(self, model: str) -> dict[str, Any]:
        """``GET /models/<model>/rollout``: the policy in force (``NotFoundError`` when there is none)."""
        return dict(self._transport.call("GET", f"/models/{quote(model)}/rollout"))

    def start_rollout(
        self,
        model: str,
        *,
        stable: str,
        canary: str,
        canary_percent: float,
        shadow_version: str | None = None,
        shadow_percent: float = 0.0,
        guard: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``PUT /models/<model>/rollout``: send ``canary_percent`` % of users to ``canary`` (the rest to
        ``stable``), optionally shadow ``shadow_percent`` % of stable traffic to ``shadow_version``, and let
        ``guard`` (max_error_rate, max_p95_ms, window_s, min_samples, failed_checks, interval_s) roll it
        back. Replaces any earlier policy."""
        body: dict[str, Any] = {"stable": stable, "canary": canary, "canary_percent": canary_percent}
        if shadow_version:
            body["shadow"] = {"version": shadow_version, "percent": shadow_percent}
        if guard is not None:
            body["guard"] = guard
        return dict(self._transport.call("PUT", f"/models/{quote(model)}/rollout", json=body))

    def promote(self, model: str) -> dict[str, Any]:
        """Make the canary the default version and clear the policy."""
        return dict(self._transport.call("POST", f"/models/{quote(model)}/rollout/promote"))

    def rollback(self, model: str) -> dict[str, Any]:
        """Send all of the model's traffic to the stable version."""
        return dict(self._transport.call("POST", f"/models/{quote(model)}/rollout/rollback"))

    def clear_rollout(self, model: str) -> dict[str, Any]:
        """Clear the policy: unpinned traffic goes to the default version again."""
        return dict(self._transport.call("DELETE", f"/models/{quote(model)}/rollout"))

    def compare(
        self, model: str, a: str, b: str, since: str | None = None, until: str | None = None
    ) -> dict[str, Any]:
        """``GET /stats/compare``: versions ``a`` and ``b`` side by side (the last 24 h by default)."""
        params = {
            k: v for k, v in {"model": model, "a": a, "b": b, "since": since, "until": until}.items() if v
        }
        return dict(self._transport.call("GET", "/stats/compare", params=params))
