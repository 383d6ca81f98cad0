"""``GET /stats/compare``: two versions of a model side by side over the same time window, for admins.

For each version, from the history: requests, the error rate (5xx: the handler's and TorchServe's
failures, over all requests), p50/p95/p99 of the successful requests' latency (nearest rank, ms), and
the distribution of top-1 classes (the ``MAX_CLASSES`` most frequent, counted over at most
``MAX_CLASS_ROWS`` of the newest successful rows). From shadow traffic between the two: how often their
top-1 classes agreed.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from apiflask import APIBlueprint, Schema
from apiflask.fields import Dict, Float, Integer, List, Nested, String
from apiflask.validators import Regexp

from ..auth.guards import ADMIN_ERRORS, admin_required
from ..extensions import db
from ..names import NAME_RE
from ..schema_fields import TimeRangeQuery, UTCDateTime
from ..tables import History, utcnow
from .tables import ShadowResult

bp = APIBlueprint("compare", __name__, tag="Statistics")

DEFAULT_WINDOW = timedelta(hours=24)
MAX_CLASSES = 10
MAX_CLASS_ROWS = 20_000
PERCENTILES = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))


def _name(**kwargs: Any) -> String:
    return String(required=True, validate=Regexp(NAME_RE, error="Not a valid name."), **kwargs)


class CompareQuery(TimeRangeQuery):
    model = _name(metadata={"example": "resnet50"})
    a = _name(metadata={"description": "one version", "example": "1.0"})
    b = _name(metadata={"description": "the other version", "example": "2.0"})


class ClassCount(Schema):
    class_id = Integer(allow_none=True)
    label = String(allow_none=True)
    count = Integer()
    share = Float()


class VersionStats(Schema):
    version = String()
    requests = Integer()
    errors = Integer(metadata={"description": "5xx answers"})
    error_rate = Float(allow_none=True)
    latency_ms = Dict(keys=String(), values=Float(allow_none=True), metadata={"example": {"p50": 40.1}})
    top1_classes = List(Nested(ClassCount))
    top1_counted = Integer(metadata={"description": "successful images the class shares count"})


class CompareOut(Schema):
    model = String()
    since = UTCDateTime()
    until = UTCDateTime()
    a = Nested(VersionStats)
    b = Nested(VersionStats)
    shadow_compared = Integer(metadata={"description": "shadowed requests between a and b with two answers"})
    agreement_rate = Float(allow_none=True, metadata={"description": "share of those whose top-1 agreed"})


def _percentile(where: list[Any], count: int, p: float) -> float | None:
    if not count:
        return None
    value = db.session.scalar(
        sa.select(History.processing_time)
        .where(*where)
        .order_by(History.processing_time)
        .offset(max(1, math.ceil(p * count)) - 1)
        .limit(1)
    )
    return None if value is None else round(float(value), 3)


def _top1(results: list[Any]) -> tuple[list[dict[str, Any]], int]:
    counts: Counter[tuple[Any, Any]] = Counter()
    for result in results:
        for item in result if isinstance(result, list) else [result]:
            if isinstance(item, dict) and "class_id" in item:
                counts[(item.get("class_id"), item.get("label"))] += 1
    total = sum(counts.values())
    top = [
        {"class_id": cid, "label": label, "count": n, "share": round(n / total, 4)}
        for (cid, label), n in counts.most_common(MAX_CLASSES)
    ]
    return top, total


def version_stats(model: str, version: str, since: datetime, until: datetime) -> dict[str, Any]:
    rows = [
        History.model_name == model,
        History.model_version == version,
        History.created_at >= since,
        History.created_at < until,
    ]
    requests, errors = db.session.execute(
        sa.select(sa.func.count(), sa.func.count().filter(History.status_code >= 500)).where(*rows)
    ).one()
    ok = [*rows, History.status_code < 400]
    ok_count = db.session.scalar(sa.select(sa.func.count()).where(*ok)) or 0
    results = db.session.scalars(
        sa.select(History.result).where(*ok).order_by(History.created_at.desc()).limit(MAX_CLASS_ROWS)
    ).all()
    classes, counted = _top1(list(results))
    return {
        "version": version,
        "requests": int(requests),
        "errors": int(errors),
        "error_rate": round(errors / requests, 4) if requests else None,
        "latency_ms": {name: _percentile(ok, ok_count, p) for name, p in PERCENTILES},
        "top1_classes": classes,
        "top1_counted": counted,
    }


def agreement(model: str, a: str, b: str, since: datetime, until: datetime) -> tuple[int, float | None]:
    pair = sa.or_(
        sa.and_(ShadowResult.stable_version == a, ShadowResult.shadow_version == b),
        sa.and_(ShadowResult.stable_version == b, ShadowResult.shadow_version == a),
    )
    compared, agreed = db.session.execute(
        sa.select(sa.func.count(), sa.func.count().filter(ShadowResult.agree.is_(True))).where(
            ShadowResult.model_name == model,
            pair,
            ShadowResult.agree.is_not(None),
            ShadowResult.created_at >= since,
            ShadowResult.created_at < until,
        )
    ).one()
    return int(compared), (round(agreed / compared, 4) if compared else None)


@bp.get("/stats/compare")
@bp.doc(
    summary="Two versions of a model side by side over one time window",
    description="Without since/until: the last 24 hours.",
    security="BearerAuth",
    responses=ADMIN_ERRORS,
)
@admin_required
@bp.input(CompareQuery, location="query")
@bp.output(CompareOut)
def compare(query_data: dict[str, Any]) -> dict[str, Any]:
    until = query_data.get("until") or utcnow()
    since = query_data.get("since") or until - DEFAULT_WINDOW
    model, a, b = query_data["model"], query_data["a"], query_data["b"]
    compared, rate = agreement(model, a, b, since, until)
    return {
        "model": model,
        "since": since,
        "until": until,
        "a": version_stats(model, a, since, until),
        "b": version_stats(model, b, since, until),
        "shadow_compared": compared,
        "agreement_rate": rate,
    }
