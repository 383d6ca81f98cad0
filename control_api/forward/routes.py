"""``POST /forward``: images in, TorchServe's classification out; every request lands in the history.

A request that pins no version goes where the model's rollout policy sends this user (a canary split,
``model_admin/routing.py``), else to TorchServe's default version. Uploads are parsed into memory
(``uploads.UploadRequest``) and each image goes to TorchServe as its raw bytes, without a copy.
Several images go concurrently (a small per-process thread pool), so TorchServe's dynamic batching
can group them; results keep upload order.
"""

from __future__ import annotations

import time
from typing import Any

from apiflask import APIBlueprint
from flask import current_app
from marshmallow import RAISE

from ..auth.guards import token_required
from ..auth.identity import current_user
from ..extensions import torchserve
from ..model_admin import guard, shadow
from ..model_admin.routing import Route, route
from ..rate_limits import rate_limited
from .history_entry import current_entry, recorded
from .image_metrics import count_images
from .outcomes import Target, answer, classify
from .schemas import ForwardForm, ForwardOut, ForwardQuery
from .uploads import read_uploads, refuse_oversized_body

bp = APIBlueprint("forward", __name__, tag="Inference")


@bp.post("/forward")
@bp.doc(
    summary="Classify one or more images",
    security="BearerAuth",
    responses={
        400: "No file",
        401: "No token, or an invalid or expired one",
        404: "Unknown model or version",
        413: "Upload over MAX_UPLOAD_MB",
        415: "Not a supported image",
        422: "Bad top_k, or an image over the pixel limit",
        429: "Over the per-user rate limit (see Retry-After)",
        503: "TorchServe unavailable (see Retry-After)",
        504: "TorchServe timed out",
    },
)
@recorded
@token_required
@rate_limited("forward")
@refuse_oversized_body
@bp.input(ForwardQuery, location="query", unknown=RAISE)
@bp.input(ForwardForm, location="form_and_files")
@bp.output(ForwardOut)
def forward(query_data: dict[str, Any], form_and_files_data: dict[str, Any]) -> dict[str, Any]:
    """multipart/form-data with parts named `file`; `top_k`, `model` and `version` as query or form fields."""
    form = form_and_files_data
    entry = current_entry()
    model = query_data.get("model") or form.get("model") or current_app.config["DEFAULT_MODEL"]
    pinned = query_data.get("version") or form.get("version")
    user = current_user()
    routed = Route(pinned) if pinned else route(model, user.id if user else None)
    target = Target(
        model=model,
        version=routed.version,
        top_k=query_data.get("top_k", form.get("top_k", 5)),
        retry_after=int(current_app.config["RETRY_AFTER_SECONDS"]),
        request_id=entry.request_id,
    )
    entry.model_name, entry.model_version = target.model, target.version
    uploads = read_uploads(form)
    client = torchserve.client
    started = time.perf_counter()
    if len(uploads) == 1:
        outcomes = [classify(client, target, uploads[0])]
    else:
        entry.request_type = "forward_batch"
        futures = [client.executor.submit(classify, client, target, upload) for upload in uploads]
        outcomes = [future.result() for future in futures]
    entry.upstream_ms = (time.perf_counter() - started) * 1000.0
    count_images(target, uploads, outcomes)
    if routed.policy is not None:
        guard.schedule(routed.policy)
        if routed.to_stable and len(uploads) == 1:
            shadow.offer(routed.policy, outcomes[0][0], uploads[0].data, outcomes[0][1], entry.request_id)
    return answer(entry, outcomes)
