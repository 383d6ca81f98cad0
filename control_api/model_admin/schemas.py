"""The schemas of /models."""

from __future__ import annotations

from typing import Any, ClassVar

from apiflask import Schema
from apiflask.fields import Boolean, File, Integer, List, Nested, String
from apiflask.validators import Range, Regexp
from marshmallow import ValidationError, validates_schema

from ..names import ARCHIVE_RE
from ..schema_fields import InputRules, StrictSchema, UTCDateTime
from .rollout_schemas import RolloutState

# The schema's maximum is the deployment's MAX_MODEL_WORKERS (control_api/openapi.py fills it in).
_WORKER_CAP = {"x-maximum-setting": "MAX_MODEL_WORKERS"}


class RegisterModelIn(StrictSchema):
    input_rules: ClassVar[InputRules] = (
        (422, "`archive` must name a file in the model store, and TorchServe must accept it."),
        (409, "The archive's model version must not be registered yet."),
    )

    archive = String(
        required=True,
        validate=Regexp(
            ARCHIVE_RE, error="A .mar file name in the model store: no path, URL or leading dot."
        ),
        metadata={"example": "resnet50-2.0.mar"},
    )
    initial_workers = Integer(load_default=1, validate=Range(1, 1024), metadata={"example": 1, **_WORKER_CAP})
    batch_size = Integer(validate=Range(1, 1024), metadata={"example": 8})
    max_batch_delay = Integer(validate=Range(0, 60_000), metadata={"description": "ms", "example": 20})
    response_timeout = Integer(validate=Range(1, 3600), metadata={"description": "s, per batch"})


class WorkersIn(StrictSchema):
    input_rules: ClassVar[InputRules] = ((422, "`min` must not exceed `max`."),)

    min = Integer(required=True, validate=Range(0, 1024), metadata={"example": 1, **_WORKER_CAP})
    max = Integer(required=True, validate=Range(1, 1024), metadata={"example": 2, **_WORKER_CAP})

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
    # The fields below are for admins only.
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
    rollout = Nested(RolloutState, allow_none=True, metadata={"description": "admins only"})


class ModelList(Schema):
    models = List(Nested(ModelOut))


class ModelDetailOut(ModelOut):
    """One model: its versions, which is the default, workers and batching."""


class ModelActionOut(ModelOut):
    """The model after the change, and what TorchServe said."""

    message = String()


class ArchiveUploadIn(StrictSchema):
    file = File(required=True, metadata={"description": "the .mar archive; its file name names it"})


class ArchiveItem(Schema):
    file_name = String(metadata={"example": "resnet50-2.0.mar"})
    size_bytes = Integer()
    model_name = String(allow_none=True, metadata={"description": "from its manifest (uploaded ones)"})
    model_version = String(allow_none=True)
    sha256 = String(allow_none=True, metadata={"description": "hex; null for archives not uploaded here"})
    uploaded_at = UTCDateTime(allow_none=True)
    uploaded_by = String(allow_none=True)


class ArchiveOut(ArchiveItem):
    """The archive uploaded or deleted."""


class ArchiveList(Schema):
    archives = List(Nested(ArchiveItem))
