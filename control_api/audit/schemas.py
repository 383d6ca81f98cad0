"""The schemas of /audit."""

from __future__ import annotations

from apiflask import Schema
from apiflask.fields import Boolean, Integer, Raw, String
from apiflask.validators import Length

from ..pagination import PageQuery, page_of
from ..schema_fields import TimeRangeQuery, UTCDateTime


class AuditQuery(PageQuery, TimeRangeQuery):
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


AuditPage = page_of(AuditItem, "AuditPage")
