"""marshmallow schemas: they validate requests and generate the OpenAPI document."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from apiflask import Schema
from apiflask.fields import Boolean, Dict, File, Float, Integer, List, Nested, Raw, String
from apiflask.validators import Length, OneOf, Range, Regexp
from marshmallow import RAISE, ValidationError, fields, validates_schema

USERNAME_RE = r"\A[A-Za-z0-9_.-]{3,64}\Z"
# A plain file name in the model store: no path, no scheme, no leading dot.
ARCHIVE_RE = r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,250}\.mar\Z"
# Model and version names go into TorchServe's URL path: no slashes, and no leading dot ("..").
NAME_RE = r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z"
_SPACE_OFFSET = re.compile(r" (\d{2}:?\d{2})\Z")


class UTCDateTime(fields.DateTime):
    """ISO 8601 in, naive UTC out; a value without an offset is taken as UTC. Written back with 'Z'."""

    default_error_messages = {"invalid": "Not a valid ISO 8601 date-time (e.g. 2025-01-31T12:00:00Z)."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        if not isinstance(value, str) or len(value) > 64:
            raise self.make_error("invalid")
        # An unencoded '+' in a query string arrives as a space: "...T12:00:00 02:00".
        text = _SPACE_OFFSET.sub(r"+\1", value.strip())
        try:
            parsed = datetime.fromisoformat(text)
            if parsed.tzinfo is not None:
                parsed = parsed.astimezone(UTC).replace(tzinfo=None)
        except (ValueError, OverflowError) as exc:
            raise self.make_error("invalid") from exc
        return parsed

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


class StrictSchema(Schema):
    """Unknown fields are an error, not silently ignored (a typo in a filter must not widen it)."""

    class Meta:
        unknown = RAISE


# --- auth ---------------------------------------------------------------------------------------------


class RegisterIn(StrictSchema):
    username = String(
        required=True,
        validate=Regexp(USERNAME_RE, error="3-64 characters of letters, digits, '_', '.' and '-'."),
        metadata={"example": "alice"},
    )
    password = String(required=True, validate=Length(8, 128), metadata={"example": "correct horse battery"})


class UserOut(Schema):
    id = Integer()
    username = String()
    is_admin = Boolean()
    created_at = UTCDateTime()


class TokenIn(StrictSchema):
    """The OAuth2 password flow's form (or the same fields as JSON)."""

    username = String(required=True, validate=Length(1, 256))
    password = String(required=True, validate=Length(1, 1024))
    grant_type = String(validate=OneOf(["password"]))
    scope = String(validate=Length(0, 1024))
    client_id = String(validate=Length(0, 256))
    client_secret = String(validate=Length(0, 256))


class TokenOut(Schema):
    access_token = String()
    token_type = String(metadata={"example": "bearer"})
    expires_in = Integer(metadata={"description": "seconds"})


# --- forward ------------------------------------------------------------------------------------------


def _top_k() -> Integer:
    return Integer(validate=Range(1, 100), metadata={"description": "classes to return, 1-100 (default 5)"})


def _model() -> String:
    return String(validate=Regexp(NAME_RE, error="Not a valid model name."), metadata={"example": "resnet50"})


def _version() -> String:
    return String(validate=Regexp(NAME_RE, error="Not a valid version."), metadata={"example": "1.0"})


class ForwardQuery(StrictSchema):
    top_k = _top_k()
    model = _model()
    version = _version()


class ForwardForm(StrictSchema):
    file = List(
        File(), metadata={"description": "one or more images (JPEG, PNG, ...), each a part named file"}
    )
    top_k = _top_k()
    model = _model()
    version = _version()


class ModelRef(Schema):
    name = String()
    version = String(allow_none=True)


class PredictionOut(Schema):
    class_id = Integer()
    label = String()
    probability = Float()


class ImageOut(Schema):
    width = Integer()
    height = Integer()
    format = String()
    size_bytes = Integer()


class ForwardItem(Schema):
    """One file's outcome: a classification, or error/message/status when that file failed."""

    request_id = String()
    model = Nested(ModelRef)
    predictions = List(Nested(PredictionOut))
    image = Nested(ImageOut)
    processing_time_ms = Float()
    error = String(metadata={"description": "only for a failed file"})
    message = String(metadata={"description": "only for a failed file"})
    status = Integer(metadata={"description": "only for a failed file"})


class ForwardOut(ForwardItem):
    """One file: the classification itself. Several files: request_id and results, in upload order."""

    results = List(Nested(ForwardItem))


# --- history and stats ---------------------------------------------------------------------------------


class TimeRangeQuery(StrictSchema):
    since = UTCDateTime(metadata={"description": "inclusive, ISO 8601; UTC when no offset is given"})
    until = UTCDateTime(metadata={"description": "exclusive, ISO 8601; UTC when no offset is given"})

    @validates_schema
    def _ordered(self, data: dict[str, Any], **kwargs: Any) -> None:
        since, until = data.get("since"), data.get("until")
        if since is not None and until is not None and since > until:
            raise ValidationError("since must not be after until.", "until")


class StatsQuery(TimeRangeQuery):
    model = String(
        validate=Regexp(NAME_RE, error="Not a valid model name."),
        metadata={"description": "only this model's requests"},
    )
    version = String(
        validate=Regexp(NAME_RE, error="Not a valid version."),
        metadata={"description": "only this version's requests (the version that answered)"},
    )


class HistoryQuery(StatsQuery):
    page = Integer(load_default=1, validate=Range(1, 10_000_000))
    per_page = Integer(load_default=50, validate=Range(1, 500))
    status_code = Integer(validate=Range(100, 599))
    username = String(
        validate=Regexp(r"\A[A-Za-z0-9_.-]{0,64}\Z", error="Not a valid username."),
        metadata={"description": "exact match; empty for unauthenticated requests"},
    )
    request_id = String(
        validate=Regexp(r"\A[A-Za-z0-9._:-]{1,64}\Z", error="Not a valid request ID."),
        metadata={"description": "the X-Request-ID of one request"},
    )


class HistoryItem(Schema):
    id = Integer()
    request_id = String(allow_none=True)
    request_type = String()
    username = String()
    model_name = String(allow_none=True)
    model_version = String(allow_none=True)
    file_count = Integer()
    processing_time = Float(metadata={"description": "ms, the whole request"})
    upstream_time = Float(allow_none=True, metadata={"description": "ms spent waiting on TorchServe"})
    input_data_size = Integer(allow_none=True, metadata={"description": "bytes"})
    image_width = Integer(allow_none=True)
    image_height = Integer(allow_none=True)
    status_code = Integer()
    result = Raw(allow_none=True, metadata={"description": "top-1 {class_id, label, probability}"})
    error_message = String(allow_none=True)
    created_at = UTCDateTime()


class HistoryPage(Schema):
    items = List(Nested(HistoryItem))
    total = Integer()
    page = Integer()
    per_page = Integer()


class DeleteQuery(StrictSchema):
    before = UTCDateTime(metadata={"description": "delete only rows created before this time"})


class AdminTokenHeader(Schema):
    admin_token = String(data_key="X-Admin-Token", metadata={"description": "must equal ADMIN_TOKEN"})


class DeletedOut(Schema):
    deleted = Integer()


class Extremes(Schema):
    mean = Float(allow_none=True)
    # Raw: sizes and pixel counts stay integers, times stay floats.
    min = Raw(allow_none=True, metadata={"type": "number"})
    max = Raw(allow_none=True, metadata={"type": "number"})


class TimeStats(Extremes):
    p50 = Float(allow_none=True)
    p95 = Float(allow_none=True)
    p99 = Float(allow_none=True)


class InputStats(Schema):
    size_bytes = Nested(Extremes)
    width = Nested(Extremes)
    height = Nested(Extremes)


class StatsOut(Schema):
    total_requests = Integer()
    successful_requests = Integer()
    failed_requests = Integer()
    error_rate = Float()
    processing_time_ms = Nested(TimeStats)
    input = Nested(InputStats)
    status_codes = Dict(keys=String(), values=Integer())
    by_model = Dict(
        keys=String(),
        values=Dict(keys=String(), values=Raw()),
        metadata={"description": "model -> version -> {total_requests, failed_requests, ...}"},
    )


# --- audit --------------------------------------------------------------------------------------------


class AuditQuery(TimeRangeQuery):
    page = Integer(load_default=1, validate=Range(1, 10_000_000))
    per_page = Integer(load_default=50, validate=Range(1, 500))
    action = String(validate=Length(1, 64), metadata={"example": "model.set_default"})
    actor = String(validate=Length(1, 128), metadata={"example": "admin"})
    target = String(validate=Length(1, 255), metadata={"example": "resnet50/2.0"})
    success = Boolean()


class AuditItem(Schema):
    id = Integer()
    created_at = UTCDateTime()
    actor = String(metadata={"description": "username, cli:<OS user> or system"})
    actor_id = Integer(allow_none=True)
    action = String()
    target = String(allow_none=True)
    details = Raw(allow_none=True)
    status_code = Integer(allow_none=True, metadata={"description": "null: the action did not finish"})
    success = Boolean(allow_none=True)
    error_message = String(allow_none=True)
    request_id = String(allow_none=True)


class AuditPage(Schema):
    items = List(Nested(AuditItem))
    total = Integer()
    page = Integer()
    per_page = Integer()


# --- model management -------------------------------------------------------------------------------------


class RegisterModelIn(StrictSchema):
    archive = String(
        required=True,
        validate=Regexp(
            ARCHIVE_RE, error="A .mar file name in the model store: no path, URL or leading dot."
        ),
        metadata={"example": "resnet50-2.0.mar"},
    )
    initial_workers = Integer(load_default=1, validate=Range(1, 1024), metadata={"example": 1})
    batch_size = Integer(validate=Range(1, 1024), metadata={"example": 8})
    max_batch_delay = Integer(validate=Range(0, 60_000), metadata={"description": "ms", "example": 20})
    response_timeout = Integer(validate=Range(1, 3600), metadata={"description": "s, per batch"})


class WorkersIn(StrictSchema):
    min = Integer(required=True, validate=Range(0, 1024), metadata={"example": 1})
    max = Integer(required=True, validate=Range(1, 1024), metadata={"example": 2})

    @validates_schema
    def _ordered(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("min") is not None and data.get("max") is not None and data["min"] > data["max"]:
            raise ValidationError("min must not exceed max.", "max")


class WorkerOut(Schema):
    id = String()
    status = String(metadata={"example": "READY"})
    pid = Integer(allow_none=True)
    start_time = String(allow_none=True)
    memory_usage = Integer(allow_none=True)
    gpu = Boolean(allow_none=True)


class ModelVersionOut(Schema):
    version = String()
    is_default = Boolean()
    archive = String(allow_none=True)
    status = String(metadata={"description": "READY (a worker is ready), LOADING, UNAVAILABLE (no worker)"})
    min_workers = Integer(allow_none=True)
    max_workers = Integer(allow_none=True)
    batch_size = Integer(allow_none=True)
    max_batch_delay_ms = Integer(allow_none=True)
    response_timeout_s = Integer(allow_none=True)
    device_type = String(allow_none=True)
    workers = List(Nested(WorkerOut))
    pending_requests = Integer(allow_none=True)


class ModelOut(Schema):
    name = String()
    default_version = String(allow_none=True)
    versions = List(Nested(ModelVersionOut))


class ModelList(Schema):
    models = List(Nested(ModelOut))


class ModelDetailOut(ModelOut):
    """One model: its versions, which is the default, workers and batching."""


class ModelActionOut(ModelOut):
    """The model after the change, and what TorchServe said."""

    message = String()


class HealthOut(Schema):
    status = String(metadata={"example": "ok"})
    database = String(metadata={"example": "ok"})
    torchserve = String(metadata={"example": "ok"})
    error = String(metadata={"description": "only when unhealthy"})
    message = String(metadata={"description": "only when unhealthy: which part failed and why"})
