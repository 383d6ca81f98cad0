"""The schemas of /register and /token, and the account as /me and /users show it."""

from __future__ import annotations

from apiflask import Schema
from apiflask.fields import Boolean, Integer, String
from apiflask.validators import Length, OneOf, Regexp

from ..names import USERNAME_RE
from ..schema_fields import StrictSchema, UTCDateTime
from .users import PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH


def new_password() -> String:
    """A password being set: 8-128 characters, any script."""
    return String(
        required=True,
        validate=Length(PASSWORD_MIN_LENGTH, PASSWORD_MAX_LENGTH),
        metadata={"example": "correct horse battery", "description": "8-128 characters, any script"},
    )


def given_password() -> String:
    """A password being checked (login, confirmation): bounded, never validated further."""
    return String(required=True, validate=Length(1, 1024))


class RegisterIn(StrictSchema):
    username = String(
        required=True,
        validate=Regexp(USERNAME_RE, error="3-64 characters of letters, digits, '_', '.' and '-'."),
        metadata={"example": "alice"},
    )
    password = new_password()


class UserOut(Schema):
    id = Integer()
    username = String()
    is_admin = Boolean()
    created_at = UTCDateTime()


class AccountOut(UserOut):
    disabled = Boolean(metadata={"description": "a disabled account gets no token; its tokens are revoked"})


class DeletedAccountOut(Schema):
    id = Integer()
    username = String()
    history_rows_kept = Integer(
        metadata={
            "description": "the account's history rows, kept for the statistics, no longer linked to it"
        }
    )


class TokenIn(StrictSchema):
    """The OAuth2 password flow's form (or the same fields as JSON)."""

    username = String(required=True, validate=Length(1, 256))
    password = given_password()
    grant_type = String(validate=OneOf(["password"]))
    scope = String(validate=Length(0, 1024))
    client_id = String(validate=Length(0, 256))
    client_secret = String(validate=Length(0, 256))


class TokenOut(Schema):
    access_token = String()
    token_type = String(metadata={"example": "bearer"})
    expires_in = Integer(metadata={"description": "seconds"})
