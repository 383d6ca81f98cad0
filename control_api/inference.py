"""/forward: images in, TorchServe's classification out; every request lands in the history.

Uploads are parsed into memory (``UploadRequest``) and each image goes to TorchServe as its raw bytes,
without a copy. Several images go concurrently (a small per-process thread pool), so TorchServe's
dynamic batching can group them; results keep upload order.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, BinaryIO, TypeVar

from apiflask import APIBlueprint
from flask import Request, current_app, g, request
from marshmallow import RAISE
from werkzeug.exceptions import ClientDisconnected

from . import metrics
from .auth import token_required
from .errors import APIError, message_of, status_of
from .extensions import torchserve
from .models import utcnow
from .observability import current_request_id, new_request_id
from .ratelimit import rate_limited
from .recording import record
from .schemas import ForwardForm, ForwardOut, ForwardQuery
from .torchserve import TorchServeClient, UpstreamError, UpstreamResponse

log = logging.getLogger(__name__)
bp = APIBlueprint("inference", __name__, tag="Inference")

F = TypeVar("F", bound=Callable[..., Any])
# Statuses that concern the whole request (TorchServe or the model), not one image.
REQUEST_LEVEL = frozenset({404, 502, 503, 504})
MAX_ERROR_MESSAGE = 1000


@dataclass
class ForwardLog:
    """What the history row will say about this request; filled in as the request goes."""

    request_id: str = field(default_factory=lambda: current_request_id() or new_request_id())
    started: float = field(default_factory=time.perf_counter)
    created_at: Any = field(default_factory=utcnow)
    request_type: str = "forward"
    model_name: str | None = None
    model_version: str | None = None
    file_count: int = 0
    input_size: int | None = None
    width: int | None = None
    height: int | None = None
    upstream_ms: float | None = None
    result: Any = None

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000.0


def _write_history(entry: ForwardLog, status: int, error: str | None) -> None:
    user = g.get("user")
    row = {
        "created_at": entry.created_at,
        "request_id": entry.request_id,
        "request_type": entry.request_type,
        "user_id": user.id if user else None,
        "username": user.username if user else "",
        "model_name": entry.model_name,
        "model_version": entry.model_version,
        "file_count": entry.file_count,
        "processing_time": round(entry.elapsed_ms(), 3),
        "upstream_time": None if entry.upstream_ms is None else round(entry.upstream_ms, 3),
        "input_data_size": entry.input_size,
        "image_width": entry.width,
        "image_height": entry.height,
        "status_code": status,
        "result": entry.result,
        "error_message": error[:MAX_ERROR_MESSAGE] if error else None,
    }
    try:
        record(row)
    except Exception as exc:
        metrics.DB_ERRORS.inc()
        log.exception("Could not write the history row for request %s", entry.request_id)
        raise APIError(
            503, "database_unavailable", "The request could not be recorded; retry shortly."
        ) from exc


def recorded(f: F) -> F:
    """Write one history row per request, success or failure, and commit it before the response leaves."""

    @wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        entry = g.forward = ForwardLog()
        try:
            response = current_app.make_response(f(*args, **kwargs))
        except Exception as exc:
            _write_history(entry, status_of(exc), message_of(exc))
            raise
        _write_history(entry, response.status_code, None)
        return response

    return wrapper  # type: ignore[return-value]


def upload_limit(f: F) -> F:
    """413 from the declared Content-Length, before a byte of the body is read.

    Chunked bodies (no Content-Length) are cut off by MAX_CONTENT_LENGTH while werkzeug streams them.
    """

    @wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        length = request.content_length
        if length is not None and length > limit:
            g.forward.input_size = length
            raise APIError(
                413,
                "payload_too_large",
                f"The upload is {length} bytes; the limit is {current_app.config['MAX_UPLOAD_MB']} MB.",
            )
        return f(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@dataclass(frozen=True)
class Target:
    """Where and how to classify: everything a pool thread needs (it has no app context)."""

    model: str
    version: str | None
    top_k: int
    retry_after: int
    request_id: str


def _upstream_error(result: UpstreamResponse, target: Target) -> APIError:
    """TorchServe's non-200 answer in our terms (never passed through raw)."""
    body = result.body if isinstance(result.body, dict) else {}
    status = result.status
    if "error" in body and "message" in body and status in (400, 413, 415, 422):
        slug, message = str(body["error"]), str(body["message"])
        if slug == "invalid_input":
            # The handler also accepts base64 text and says 400 when bytes are neither an image nor valid
            # base64; for an uploaded file that simply means "not a supported image".
            return APIError(415, "unsupported_image", f"Not a supported image ({message}).")
        return APIError(status, slug, message)  # our handler's per-image error
    if status == 404:
        name = f"{target.model!r} version {target.version!r}" if target.version else repr(target.model)
        return APIError(404, "model_not_found", f"Model {name} is not registered.")
    retry = {"Retry-After": str(target.retry_after)}
    if status in (503, 507):
        return APIError(503, "torchserve_unavailable", "The model has no worker available.", headers=retry)
    if status == 408:
        return APIError(504, "torchserve_timeout", "TorchServe timed out while running the model.")
    if status == 413:
        return APIError(413, "payload_too_large", "The image is larger than TorchServe accepts.")
    message = str(body.get("message") or "TorchServe failed to classify the image.")[:200]
    return APIError(502, "upstream_error", f"TorchServe answered HTTP {status}: {message}")


Outcome = tuple[dict[str, Any] | APIError, float]


class UploadRequest(Request):
    """Uploaded files stay in memory (``io.BytesIO``) instead of werkzeug's temporary file past 500 KB.

    A 12 MP photo then costs no file creation, disk write and read back, and goes upstream as the same
    buffer (``Upload.of``). Memory is bounded: a request body is at most MAX_CONTENT_LENGTH, so a
    process holds at most that times its threads.
    """

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> BinaryIO:
        return io.BytesIO()

    def _get_stream_for_parsing(self) -> BinaryIO:
        """A body of known length, read in one call before parsing.

        werkzeug's parser pulls 64 KiB at a time; under gunicorn each pull re-buffered the rest of a 1 MiB
        recv(), which made reading a 12 MP upload cost more CPU than parsing it. Reached only once the
        view parses the form: after authentication and the size check (upload_limit), so an anonymous or
        oversized upload is never read.
        """
        length = self.content_length
        limit = self.max_content_length
        if not length or (limit is not None and length > limit) or hasattr(self, "_cached_data"):
            return super()._get_stream_for_parsing()  # type: ignore[return-value]
        source = self.environ["wsgi.input"]
        pieces, missing = [], length
        while missing > 0:
            piece = source.read(missing)
            if not piece:
                raise ClientDisconnected()  # 400: the client sent less than its Content-Length
            pieces.append(piece)
            missing -= len(piece)
        return io.BytesIO(pieces[0] if len(pieces) == 1 else b"".join(pieces))


@dataclass(frozen=True)
class Upload:
    """One uploaded file's bytes."""

    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    @classmethod
    def of(cls, stream: BinaryIO) -> Upload:
        # UploadRequest's BytesIO hands its buffer over without a copy.
        return cls(stream.getvalue() if isinstance(stream, io.BytesIO) else stream.read())


def _classify(client: TorchServeClient, target: Target, upload: Upload) -> Outcome:
    """One image: (classification, upstream ms), or (APIError, ms): returned, not raised, for batches."""
    if not upload.size:
        return APIError(400, "empty_input", "The file is empty."), 0.0
    try:
        result = client.predict(target.model, target.version, upload.data, target.top_k, target.request_id)
    except UpstreamError as exc:
        headers = {"Retry-After": str(target.retry_after)} if exc.status == 503 else None
        return APIError(exc.status, exc.slug, exc.message, headers=headers), 0.0
    if result.status != 200:
        return _upstream_error(result, target), result.elapsed_ms
    body = result.body
    if not (isinstance(body, dict) and isinstance(body.get("predictions"), list) and "image" in body):
        metrics.UPSTREAM_ERRORS.labels("bad_answer").inc()
        return APIError(
            502, "upstream_error", "TorchServe's answer was not a classification."
        ), result.elapsed_ms
    classification = {
        "model": body.get("model") or {"name": target.model, "version": target.version},
        "predictions": body["predictions"],
        "image": {**(body.get("image") or {}), "size_bytes": upload.size},
    }
    return classification, result.elapsed_ms


def _top1(item: Any) -> Any:
    if isinstance(item, APIError):
        return {"error": item.slug, "status": item.status_code}
    predictions = item.get("predictions") or []
    return predictions[0] if predictions else None


def _uploads(form: dict[str, Any]) -> list[Upload]:
    files = form.get("file") or []
    if not files:
        raise APIError(400, "no_file", "Send one or more images as multipart/form-data parts named 'file'.")
    if len(files) > current_app.config["MAX_FILES_PER_REQUEST"]:
        raise APIError(
            413, "too_many_files", f"At most {current_app.config['MAX_FILES_PER_REQUEST']} files per request."
        )
    uploads = [Upload.of(storage.stream) for storage in files]
    g.forward.input_size = sum(u.size for u in uploads)
    if g.forward.input_size > current_app.config["MAX_UPLOAD_BYTES"]:
        raise APIError(
            413, "payload_too_large", f"The files exceed {current_app.config['MAX_UPLOAD_MB']} MB."
        )
    return uploads


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
@upload_limit
@bp.input(ForwardQuery, location="query", unknown=RAISE)
@bp.input(ForwardForm, location="form_and_files")
@bp.output(ForwardOut)
def forward(query_data: dict[str, Any], form_and_files_data: dict[str, Any]) -> dict[str, Any]:
    """multipart/form-data with parts named `file`; `top_k`, `model` and `version` as query or form fields."""
    form = form_and_files_data
    entry: ForwardLog = g.forward
    target = Target(
        model=query_data.get("model") or form.get("model") or current_app.config["DEFAULT_MODEL"],
        version=query_data.get("version") or form.get("version"),
        top_k=query_data.get("top_k", form.get("top_k", 5)),
        retry_after=int(current_app.config["RETRY_AFTER_SECONDS"]),
        request_id=entry.request_id,
    )
    entry.model_name, entry.model_version = target.model, target.version
    uploads = _uploads(form)
    entry.file_count = len(uploads)
    client = torchserve.client
    started = time.perf_counter()
    if len(uploads) == 1:
        outcomes = [_classify(client, target, uploads[0])]
    else:
        entry.request_type = "forward_batch"
        futures = [client.executor.submit(_classify, client, target, upload) for upload in uploads]
        outcomes = [future.result() for future in futures]
    entry.upstream_ms = (time.perf_counter() - started) * 1000.0
    _count_images(target, uploads, outcomes)
    items = [item for item, _ in outcomes]
    for item in items:
        if isinstance(item, dict) and item["model"].get("version"):
            entry.model_version = str(item["model"]["version"])
            break
    if len(items) == 1:
        return _single(entry, items[0])
    return _batch(entry, outcomes)


# Per-image answers of our handler: TorchServe found the model version, the image was the problem.
HANDLER_ERRORS = frozenset({400, 413, 415, 422})


def _count_images(target: Target, uploads: list[Upload], outcomes: list[Outcome]) -> None:
    """api_forward_images_total and api_upstream_duration_seconds, per image that went upstream.

    Labels are the version that answered (the default version's real name), or the one asked for. Names
    TorchServe has not confirmed (404, or no answer at all) are "unknown", except the configured default
    model: clients must not be able to mint label values by inventing model or version names.
    """
    default_model = current_app.config["DEFAULT_MODEL"]
    for upload, (item, upstream_ms) in zip(uploads, outcomes, strict=True):
        if not upload.size:
            continue  # refused here, never sent
        status = item.status_code if isinstance(item, APIError) else 200
        confirmed = isinstance(item, dict) or status in HANDLER_ERRORS
        if status == 404:
            model = version = metrics.UNKNOWN
        else:
            model = target.model if confirmed or target.model == default_model else metrics.UNKNOWN
            if isinstance(item, dict) and item.get("model", {}).get("version"):
                version = str(item["model"]["version"])
            elif target.version is None:
                version = "default"
            else:
                version = target.version if confirmed else metrics.UNKNOWN
        metrics.FORWARD_IMAGES.labels(model, version, str(status)).inc()
        if upstream_ms:
            metrics.UPSTREAM_DURATION.labels(model, version).observe(upstream_ms / 1000.0)


def _single(entry: ForwardLog, item: Any) -> dict[str, Any]:
    if isinstance(item, APIError):
        raise item
    entry.result = _top1(item)
    entry.width, entry.height = item["image"].get("width"), item["image"].get("height")
    return {"request_id": entry.request_id, **item, "processing_time_ms": round(entry.elapsed_ms(), 3)}


def _batch(entry: ForwardLog, outcomes: list[Outcome]) -> dict[str, Any]:
    items = [item for item, _ in outcomes]
    errors = [item for item in items if isinstance(item, APIError)]
    # TorchServe down, model unknown, ...: one answer for the request, not the same error per file.
    statuses = {e.status_code for e in errors}
    if len(errors) == len(items) and len(statuses) == 1 and statuses <= REQUEST_LEVEL:
        raise errors[0]
    entry.result = [_top1(item) for item in items]
    results: list[dict[str, Any]] = []
    for item, upstream_ms in outcomes:
        if isinstance(item, APIError):
            results.append({"error": item.slug, "message": item.message, "status": item.status_code})
        else:
            results.append(
                {"request_id": entry.request_id, **item, "processing_time_ms": round(upstream_ms, 3)}
            )
    return {
        "request_id": entry.request_id,
        "results": results,
        "processing_time_ms": round(entry.elapsed_ms(), 3),
    }
