"""The schemas of /forward: its query and form fields, and its answer."""

from __future__ import annotations

from typing import ClassVar

from apiflask import Schema
from apiflask.fields import File, Float, Integer, List, Nested, String
from apiflask.validators import Range, Regexp

from ..names import NAME_RE
from ..schema_fields import InputRules, StrictSchema


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
    # Required, but a request without any gets the view's 400 no_file, for any content type.
    documented_required: ClassVar[tuple[str, ...]] = ("file",)
    input_rules: ClassVar[InputRules] = (
        (400, "At least one `file` part (no_file otherwise)."),
        (415, "Each `file` must be an image in a supported format (JPEG, PNG, WebP, GIF, BMP, TIFF)."),
        (422, "Each image must be at most `max_image_pixels` (64 MP by default)."),
        (413, "At most MAX_FILES_PER_REQUEST files and MAX_UPLOAD_MB in all."),
    )

    file = List(
        File(),
        metadata={
            "description": "one or more images (JPEG, PNG, ...), each a part named file",
            "example": ["(the image's bytes)"],
        },
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
