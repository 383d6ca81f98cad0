"""The schemas of /history and /stats."""

from __future__ import annotations

from apiflask import Schema
from apiflask.fields import Dict, Float, Integer, List, Nested, Raw, String
from apiflask.validators import OneOf, Range, Regexp

from ..names import NAME_RE, REQUEST_ID_RE
from ..pagination import PageQuery, page_of
from ..schema_fields import StrictSchema, TimeRangeQuery, UTCDateTime


class ModelQuery(TimeRangeQuery):
    model = String(
        validate=Regexp(NAME_RE, error="Not a valid model name."),
        metadata={"description": "only this model's requests"},
    )
    version = String(
        validate=Regexp(NAME_RE, error="Not a valid version."),
        metadata={"description": "only this version's requests (the version that answered)"},
    )


class StatsQuery(ModelQuery):
    status = String(
        load_default="ok",
        validate=OneOf(("ok", "error", "all")),
        metadata={
            "description": "the requests the latency percentiles are over: ok (status < 400), error, all"
        },
    )


class HistoryQuery(PageQuery, ModelQuery):
    status_code = Integer(validate=Range(100, 599))
    username = String(
        validate=Regexp(r"\A[A-Za-z0-9_.-]{0,64}\Z", error="Not a valid username."),
        metadata={"description": "exact match; empty for unauthenticated requests"},
    )
    request_id = String(
        validate=Regexp(REQUEST_ID_RE, error="Not a valid request ID."),
        metadata={"description": "the X-Request-ID of one request"},
    )


class HistoryListQuery(HistoryQuery):
    format = String(
        validate=OneOf(("json", "csv")),
        metadata={
            "description": "csv: every matching row as CSV (page and per_page ignored); also Accept: text/csv"
        },
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


HistoryPage = page_of(HistoryItem, "HistoryPage")


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


class TopClass(Schema):
    label = String()
    count = Integer()


class ClassDistribution(Schema):
    top = List(Nested(TopClass), metadata={"description": "the 20 most frequent top-1 classes"})
    other = Integer(metadata={"description": "images whose top-1 class is not among them"})
    total = Integer(metadata={"description": "classified images"})


class UserFigures(Schema):
    username = String(metadata={"description": "'' for unauthenticated requests"})
    requests = Integer()
    errors = Integer()
    images = Integer()


class OtherUsers(Schema):
    users = Integer()
    requests = Integer()
    errors = Integer()
    images = Integer()


class UserUsage(Schema):
    top = List(Nested(UserFigures), metadata={"description": "the 50 users with the most requests"})
    other = Nested(OtherUsers)


class StatsOut(Schema):
    status = String(metadata={"description": "the requests the percentiles are over: ok, error or all"})
    percentiles_since = UTCDateTime(
        allow_none=True,
        metadata={
            "description": "set when the range reaches rows purged by retention: the percentiles cover the "
            "rows kept, from this time (counts and sums still cover the whole range, from the rollups)"
        },
    )
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
    classes = Nested(ClassDistribution)
    users = Nested(UserUsage)


class TimeseriesQuery(ModelQuery):
    bucket = String(
        required=True,
        validate=OneOf(("1m", "1h", "1d")),
        metadata={"description": "bucket width: a minute, an hour or a day"},
    )


class TimeseriesPoint(Schema):
    start = UTCDateTime()
    requests = Integer()
    errors = Integer()
    images = Integer()
    p50 = Float(allow_none=True, metadata={"description": "ms, successful requests"})
    p95 = Float(allow_none=True)
    p99 = Float(allow_none=True)
    by_model = Dict(
        keys=String(),
        values=Dict(keys=String(), values=Raw()),
        metadata={"description": "model -> version -> {requests, errors, images}"},
    )


class TimeseriesOut(Schema):
    bucket = String()
    since = UTCDateTime(metadata={"description": "the start of the first bucket"})
    until = UTCDateTime(metadata={"description": "the end of the last bucket"})
    points = List(Nested(TimeseriesPoint))
