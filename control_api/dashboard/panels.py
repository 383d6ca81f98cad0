"""What the dashboard shows besides the charts (which the page draws from /stats and /stats/timeseries):
the time ranges, the summary numbers, the model versions and the last failures."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from ..extensions import db
from ..model_admin.tables import RolloutPolicy
from ..records.rollup_writes import SPANS, floor_to
from ..records.stats import compute_stats
from ..tables import History, utcnow

log = logging.getLogger(__name__)

# Range name -> (how far back, bucket width of the charts).
RANGES: dict[str, tuple[timedelta, str]] = {
    "1h": (timedelta(hours=1), "1m"),
    "6h": (timedelta(hours=6), "1m"),
    "24h": (timedelta(days=1), "1h"),
    "7d": (timedelta(days=7), "1h"),
    "30d": (timedelta(days=30), "1d"),
}
DEFAULT_RANGE = "24h"
FAILURES_SHOWN = 20


def range_start(name: str, now: datetime | None = None) -> tuple[datetime, str]:
    """The start of range ``name`` (aligned to its bucket, so the charts and the numbers agree) and its
    bucket width."""
    back, bucket = RANGES[name]
    return floor_to((now or utcnow()) - back + SPANS[bucket], bucket), bucket


def summary(since: datetime) -> dict[str, Any]:
    return compute_stats(since)


def last_failures(limit: int = FAILURES_SHOWN) -> list[History]:
    query = (
        sa.select(History)
        .where(History.status_code >= 400)
        .order_by(History.created_at.desc(), History.id.desc())
        .limit(limit)
    )
    return list(db.session.scalars(query))


def model_versions(by_model: dict[str, dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Each model version that answered in the range (requests, error rate) with its TorchServe state
    (default or not, worker status), when TorchServe answers, and its part in a rollout policy."""
    from ..model_admin.catalog import describe, model_names

    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for model, versions in by_model.items():
        for version, figures in versions.items():
            rows[(model, version)] = {
                "model": model,
                "version": version,
                "requests": figures["total_requests"],
                "error_rate": figures["error_rate"],
                "state": "not registered",
            }
    try:
        for name in model_names():
            for entry in describe(name)["versions"]:
                version = str(entry["version"])
                row = rows.setdefault(
                    (name, version),
                    {"model": name, "version": version, "requests": 0, "error_rate": 0.0},
                )
                row["state"] = ("default, " if entry["is_default"] else "") + str(entry["status"]).lower()
    except Exception:  # TorchServe down or unreachable: the page still shows the history's view
        log.warning("TorchServe did not describe its models for the dashboard", exc_info=True)
        for row in rows.values():
            row["state"] = "unknown (TorchServe unavailable)"
    for row in rows.values():
        row["rollout"] = ""
    for policy in db.session.scalars(sa.select(RolloutPolicy)):
        roles = {
            policy.stable: f"stable ({policy.state})",
            policy.canary: f"canary {policy.canary_percent:g} % ({policy.state})",
        }
        if policy.shadow_version and policy.shadow_percent:
            roles.setdefault(policy.shadow_version, f"shadow {policy.shadow_percent:g} %")
        for version, role in roles.items():
            if (policy.model_name, version) in rows:
                rows[(policy.model_name, version)]["rollout"] = role
    return sorted(rows.values(), key=lambda r: (r["model"], r["version"]))
