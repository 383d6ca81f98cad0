"""The schemas of /forward: its query and form fields, and its answer."""

from __future__ import annotations

from apiflask import Schema
from apiflask.fields import File, Float, Integer, List, Nested, String
from apiflask.validators import Range, Regexp

from ..names import NAME_RE
from ..schema_fields import StrictSchema


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
    precision = String(
        metadata={
            "description": "the precision that computed the answer: fp32, bf16 or int8 (an int8 archive "
            "serves fp32 on a CPU its compiled model cannot run on)",
            "enum": ["fp32", "bf16", "int8"],
        }
    )


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
