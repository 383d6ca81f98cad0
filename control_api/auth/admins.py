"""Admin accounts outside the API: the ``create-admin`` command and the ADMIN_USERNAME bootstrap.

Both are audited (``audit_log``), in the same transaction as the account they create or change.
"""

from __future__ import annotations

import getpass
import logging

import click
import sqlalchemy as sa
from flask import Flask
from flask.cli import with_appcontext
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from ..audit.trail import add_row
from ..config import ConfigError
from ..extensions import db
from ..names import is_username
from ..tables import User
from .accounts import change_password
from .users import find_user, is_password

log = logging.getLogger(__name__)


@click.command("create-admin")
@with_appcontext
@click.argument("username")
@click.option(
    "--password", prompt=True, hide_input=True, confirmation_prompt=True, help="prompted when absent"
)
def create_admin_command(username: str, password: str) -> None:
    """Create the admin USERNAME, or make an existing user (any case) an enabled admin and set their
    password."""
    if not is_username(username):
        raise click.BadParameter(
            "3-64 characters of letters, digits, '_', '.' and '-'", param_hint="USERNAME"
        )
    if not is_password(password):
        raise click.BadParameter("8-128 characters", param_hint="--password")
    user = find_user(username)  # in any case: "Boss" updates an existing "boss"
    created = user is None
    if user is None:
        user = User(username=username)
        db.session.add(user)
        user.set_password(password)
    else:
        change_password(user, password)  # the tokens issued under the old password stop working
    was_admin, was_disabled = bool(user.is_admin), bool(user.disabled)
    user.is_admin, user.disabled = True, False  # also how a locked-out admin gets back in
    db.session.flush()
    add_row(
        "admin.create" if created else "admin.update",
        f"cli:{_os_user()}",
        target=user.username,
        details={
            "user_id": user.id,
            "created": created,
            "was_admin": was_admin,
            "was_disabled": was_disabled,
            "password_set": True,
        },
        status_code=201 if created else 200,
        success=True,
    )
    db.session.commit()  # the account and its audit row, together
    click.echo(f"{'Created' if created else 'Updated'} admin {user.username!r}.")


def _os_user() -> str:
    """Who ran the command, as far as the OS says (containers may have no passwd entry)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def bootstrap_admin(app: Flask) -> None:
    """ADMIN_USERNAME/ADMIN_PASSWORD: create that admin if absent (once the schema exists), audited."""
    username, password = app.config.get("ADMIN_USERNAME"), app.config.get("ADMIN_PASSWORD")
    if not username or not password:
        return
    if not is_username(username) or not is_password(password):
        raise ConfigError("ADMIN_USERNAME must be 3-64 of [A-Za-z0-9_.-], ADMIN_PASSWORD 8-128 characters")
    with app.app_context():
        try:
            if not sa.inspect(db.engine).has_table("users"):
                log.info("No users table yet (run `flask db upgrade`): admin %r not created", username)
                return
            existing = find_user(username)
            if existing is None:
                user = User(username=username, is_admin=True)
                user.set_password(password)
                db.session.add(user)
                db.session.flush()
                add_row(
                    "admin.create",
                    "system",
                    target=username,
                    details={"source": "ADMIN_USERNAME", "user_id": user.id},
                    status_code=201,
                    success=True,
                )
                db.session.commit()  # the admin and its audit row, together
                log.info("Created admin %r from ADMIN_USERNAME", username)
            elif not existing.is_admin:
                # Someone registered that name first: never grant admin to a password we did not set.
                log.warning("ADMIN_USERNAME %r is an existing non-admin user; not promoted", username)
        except IntegrityError:
            db.session.rollback()  # another gunicorn worker created it first
        except SQLAlchemyError:
            db.session.rollback()
            log.exception("Could not create admin %r", username)
        finally:
            db.session.remove()
