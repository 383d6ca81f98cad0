"""The schemas of /me: the history query without ``username``, the usage window, password changes and
account deletion."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any, ClassVar

from apiflask import Schema
from apiflask.fields import Date, Integer, List, Nested, String
from apiflask.validators import Range
from marshmallow import ValidationError, post_load, validates_schema

from ..auth.schemas import given_password, new_password
from ..records.schemas import HistoryQuery
from ..schema_fields import InputRules, StrictSchema
from ..tables import utcnow

DEFAULT_USAGE_DAYS = 30
MAX_USAGE_DAYS = 366
# Dates whose next day exists (the window's end is the day after ``until``).
DAY_RANGE = Range(date(1970, 1, 1), date(9999, 12, 30))


class OwnHistoryQuery(HistoryQuery):
    """``GET /history``'s filters, less ``username``: the caller's rows are the only ones."""

    class Meta(HistoryQuery.Meta):
        exclude = ("username",)


class UsageQuery(StrictSchema):
    input_rules: ClassVar[InputRules] = (
        (422, "`since` must not be after `until`."),
        (
            422,
            f"At most {MAX_USAGE_DAYS} days at a time, counting the defaults (`until` today, `since` "
            f"{DEFAULT_USAGE_DAYS - 1} days before `until`).",
        ),
    )

    since = Date(
        validate=DAY_RANGE,
        metadata={
            "description": f"first UTC day (inclusive); default: {DEFAULT_USAGE_DAYS - 1} days before until"
        },
    )
    until = Date(
        validate=DAY_RANGE, metadata={"description": "last UTC day (inclusive); default: today (UTC)"}
    )

    @post_load
    def _window(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        until = data.get("until") or utcnow().date()
        since = data.get("since") or until - timedelta(days=DEFAULT_USAGE_DAYS - 1)
        if since > until:
            raise ValidationError("since must not be after until.", "until")
        if (until - since).days + 1 > MAX_USAGE_DAYS:
            raise ValidationError(f"At most {MAX_USAGE_DAYS} days at a time.", "since")
        return {"since": since, "until": until}


class UsageCounts(Schema):
    requests = Integer(metadata={"description": "calls to /forward"})
    images = Integer(metadata={"description": "files sent (every outcome)"})
    errors = Integer(metadata={"description": "calls answered 400 or above"})


class UsageDay(UsageCounts):
    day = String(metadata={"description": "UTC day, YYYY-MM-DD", "example": "2026-12-01"})


class UsageOut(Schema):
    since = Date()
    until = Date()
    days = List(Nested(UsageDay), metadata={"description": "every day of the window, oldest first"})
    total = Nested(UsageCounts)


class PasswordChangeIn(StrictSchema):
    input_rules: ClassVar[InputRules] = ((422, "`new_password` must differ from `current_password`."),)

    current_password = given_password()
    new_password = new_password()

    @validates_schema
    def _changed(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("current_password") == data.get("new_password"):
            raise ValidationError("The new password must differ from the current one.", "new_password")


class AccountDeleteIn(StrictSchema):
    password = given_password()
