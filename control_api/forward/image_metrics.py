"""/forward's per-image metrics: ``api_forward_images_total`` and ``api_upstream_duration_seconds``.

Labels are the version that answered (the default version's real name), or the one asked for. Names
TorchServe has not confirmed (404, or no answer at all) are "unknown", except the configured default
model: clients must not be able to mint label values by inventing model or version names.
"""

from __future__ import annotations

from flask import current_app

from ..errors import APIError
from ..ops import counters
from ..torchserve.answers import HANDLER_ERRORS
from .outcomes import Outcome, Target
from .uploads import Upload


def count_images(target: Target, uploads: list[Upload], outcomes: list[Outcome]) -> None:
    """Count each image that went upstream, with its status, and how long TorchServe took on it."""
    default_model = current_app.config["DEFAULT_MODEL"]
    for upload, (item, upstream_ms) in zip(uploads, outcomes, strict=True):
        if not upload.size:
            continue  # refused here, never sent
        status = item.status_code if isinstance(item, APIError) else 200
        confirmed = isinstance(item, dict) or status in HANDLER_ERRORS
        if status == 404:
            model = version = counters.UNKNOWN
        else:
            model = target.model if confirmed or target.model == default_model else counters.UNKNOWN
            if isinstance(item, dict) and item.get("model", {}).get("version"):
                version = str(item["model"]["version"])
            elif target.version is None:
                version = "default"
            else:
                version = target.version if confirmed else counters.UNKNOWN
        counters.FORWARD_IMAGES.labels(model, version, str(status)).inc()
        if upstream_ms:
            counters.UPSTREAM_DURATION.labels(model, version).observe(upstream_ms / 1000.0)
