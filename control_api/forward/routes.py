"""``POST /forward``: images in, TorchServe's classification out; every signed-in request lands in the
history (calls without a valid token are counted, not written: ``anonymous``).

A request that pins no version goes where the model's rollout policy sends this user (a canary split,
``model_admin/routing.py``), else to TorchServe's default version. Uploads are parsed into memory
(``uploads.UploadRequest``), then admitted: the user's image and megapixel budgets (``pixels``), and a
slot of this process's /forward capacity (``capacity``). Each image goes to TorchServe as its raw bytes,
without a copy. Several images go concurrently (a small per-process thread pool), so TorchServe's
dynamic batching can group them; results keep upload order.
"""

from __future__ import annotations

import time
from typing import Any

from apiflask import APIBlueprint
from flask import current_app
from marshmallow import RAISE

from ..auth.identity import current_user
from ..extensions import torchserve
from ..model_admin import guard, shadow
from ..model_admin.routing import Route, route
from ..rate_limits import enforce
from .anonymous import signed_in_unrecorded
from .capacity import capacity
from .history_entry import current_entry, recorded
from .image_metrics import count_images
from .outcomes import Target, answer, classify, recorded_names
from .pixels import charge_pixels
from .schemas import ForwardForm, ForwardOut, ForwardQuery
from .uploads import read_uploads, refuse_oversized_body

bp = APIBlueprint("forward", __name__, tag="Inference")


@bp.post("/forward")
@bp.doc(
    summary="Classify one or more images",
    security="BearerAuth",
    responses={
        400: "No file",
        401: "No token, or an invalid or expired one (not written to the history)",
        404: "Unknown model or version",
        413: "Upload over MAX_UPLOAD_MB",
        415: "Not a supported image",
        422: "Bad top_k, an image over the pixel limit (image_too_large), or more megapixels than "
        "MAX_REQUEST_MEGAPIXELS in one request (too_many_pixels)",
        429: "Over the per-user image or megapixel budget, over FORWARD_USER_CONCURRENCY requests at "
        "once or more than FORWARD_USER_MEGAPIXELS in flight (too_many_concurrent), or, without a valid "
        "token, over the per-address budget (see Retry-After)",
        502: "TorchServe failed (see Retry-After)",
        503: "TorchServe unavailable, every /forward slot taken (forward_busy), or the database "
        "unavailable (see Retry-After)",
        504: "TorchServe timed out",
    },
)
@signed_in_unrecorded
@recorded
@refuse_oversized_body
@bp.input(ForwardQuery, location="query", unknown=RAISE)
@bp.input(ForwardForm, location="form_and_files")
@bp.output(ForwardOut)
def forward(query_data: dict[str, Any], form_and_files_data: dict[str, Any]) -> dict[str, Any]:
    """multipart/form-data with parts named `file`; `top_k`, `model` and `version` as query or form fields."""
    form = form_and_files_data
    entry = current_entry()
    default_model = current_app.config["DEFAULT_MODEL"]
    model = query_data.get("model") or form.get("model") or default_model
    pinned = query_data.get("version") or form.get("version")
    user = current_user()
    assert user is not None  # signed_in_unrecorded let the request in
    routed = Route(pinned) if pinned else route(model, user.id)
    target = Target(
        model=model,
        version=routed.version,
        top_k=query_data.get("top_k", form.get("top_k", 5)),
        retry_after=int(current_app.config["RETRY_AFTER_SECONDS"]),
        request_id=entry.request_id,
    )
    entry.model_name, entry.model_version = recorded_names(
        target, [], default_model, routed.policy is not None
    )
    uploads = read_uploads(form)
    enforce("forward", len(uploads))
    megapixels = charge_pixels(uploads)
    client = torchserve.client
    with capacity().admitted(user.id, megapixels, target.retry_after):
        started = time.perf_counter()
        if len(uploads) == 1:
            outcomes = [classify(client, target, uploads[0])]
        else:
            entry.request_type = "forward_batch"
            futures = [client.executor.submit(classify, client, target, upload) for upload in uploads]
            outcomes = [future.result() for future in futures]
        entry.upstream_ms = (time.perf_counter() - started) * 1000.0
    entry.model_name, entry.model_version = recorded_names(
        target, outcomes, default_model, routed.policy is not None
    )
    count_images(target, uploads, outcomes)
    if routed.policy is not None:
        guard.schedule(routed.policy)
        if routed.to_stable and len(uploads) == 1:
            shadow.offer(routed.policy, outcomes[0][0], uploads[0].data, outcomes[0][1], entry.request_id)
    return answer(entry, outcomes)
