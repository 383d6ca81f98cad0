"""What ``Client.classify`` and ``Client.classify_many`` return."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import ClientError


@dataclass(frozen=True)
class Prediction:
    """One class of a classification: ImageNet ``class_id``, its ``label`` and its ``probability``."""

    class_id: int
    label: str
    probability: float


@dataclass(frozen=True)
class Classification:
    """One image's answer from ``POST /forward``; ``raw`` is the JSON as the API sent it."""

    request_id: str
    model: str
    version: str | None
    predictions: list[Prediction]
    width: int | None
    height: int | None
    format: str | None
    processing_time_ms: float | None
    raw: dict[str, Any] = field(repr=False)

    @property
    def top1(self) -> Prediction | None:
        """The most probable class (None only if the API returned no prediction)."""
        return self.predictions[0] if self.predictions else None

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Classification:
        model = body.get("model") or {}
        image = body.get("image") or {}
        return cls(
            request_id=str(body.get("request_id") or ""),
            model=str(model.get("name") or ""),
            version=model.get("version"),
            predictions=[
                Prediction(int(p["class_id"]), str(p["label"]), float(p["probability"]))
                for p in body.get("predictions") or []
            ],
            width=image.get("width"),
            height=image.get("height"),
            format=image.get("format"),
            processing_time_ms=body.get("processing_time_ms"),
            raw=body,
        )


@dataclass(frozen=True)
class ItemResult:
    """One input of ``classify_many``: its ``source`` (as given) and either a classification or an error."""

    source: str
    classification: Classification | None = None
    error: ClientError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None
