"""The schemas of /register and /token."""

from __future__ import annotations

from apiflask import Schema
from apiflask.fields import Boolean, Integer, String
from apiflask.validators import Length, OneOf, Regexp

from ..names import USERNAME_RE
from ..schema_fields import StrictSchema, UTCDateTime
from .users import PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH


class RegisterIn(StrictSchema):
    username = String(
        required=True,
        validate=Regexp(USERNAME_RE, error="3-64 characters of letters, digits, '_', '.' and '-'."),
        metadata={"example": "alice"},
    )
    password = String(
        required=True,
        validate=Length(PASSWORD_MIN_LENGTH, PASSWORD_MAX_LENGTH),
        metadata={"example": "correct horse battery"},
    )


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
