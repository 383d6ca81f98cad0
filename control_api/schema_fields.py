"""Schema pieces every feature's schemas build on: strict input schemas, UTC date-times, time ranges,
JSON booleans.

The schemas validate requests and generate the OpenAPI document. A schema's ``input_rules`` are the rules
JSON Schema cannot state (control_api/openapi.py puts them in the document).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, ClassVar

from apiflask import Schema
from marshmallow import RAISE, ValidationError, fields, validates_schema

# A schema's rules beyond JSON Schema: (the status a request breaking it gets, the rule as a sentence).
InputRules = tuple[tuple[int, str], ...]

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


class StrictBoolean(fields.Boolean):
    """JSON true or false only: not 0, 1, "yes" or the other spellings marshmallow's Boolean takes."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class TimeRangeQuery(StrictSchema):
    input_rules: ClassVar[InputRules] = ((422, "`since` must not be after `until`."),)

    since = UTCDateTime(metadata={"description": "inclusive, ISO 8601; UTC when no offset is given"})
    until = UTCDateTime(metadata={"description": "exclusive, ISO 8601; UTC when no offset is given"})

    @validates_schema
    def _ordered(self, data: dict[str, Any], **kwargs: Any) -> None:
        since, until = data.get("since"), data.get("until")
        if since is not None and until is not None and since > until:
            raise ValidationError("since must not be after until.", "until")
