"""The schemas of /users."""

from __future__ import annotations

from typing import Any, ClassVar

from apiflask.fields import Boolean, String
from apiflask.validators import Regexp
from marshmallow import ValidationError, validates_schema

from ..auth.schemas import AccountOut
from ..pagination import PageQuery, page_of
from ..schema_fields import InputRules, StrictBoolean, StrictSchema


class UserQuery(PageQuery):
    q = String(
        validate=Regexp(
            r"\A[A-Za-z0-9_.-]{1,64}\Z", error="1-64 characters of letters, digits, '_', '.', '-'."
        ),
        metadata={"description": "usernames starting with this, in any case"},
    )
    is_admin = Boolean()
    disabled = Boolean()


class UserPatchIn(StrictSchema):
    """One or both; a field left out is left as it is."""

    input_rules: ClassVar[InputRules] = ((422, "Give `is_admin`, `disabled` or both."),)

    is_admin = StrictBoolean(
        metadata={"description": "false revokes the user's tokens; the last active admin cannot lose it"}
    )
    disabled = StrictBoolean(
        metadata={
            "description": "true revokes the tokens and refuses new ones; not for the last active admin"
        }
    )

    @validates_schema
    def _something(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data:
            raise ValidationError("Give is_admin, disabled or both.", "_schema")


UserPage = page_of(AccountOut, "UserPage")
