"""Flask CLI commands: ``flask --app control_api <command>``."""

from __future__ import annotations

import getpass
import re

import click
from flask import Flask
from flask.cli import with_appcontext

from .audit import add_row
from .auth import find_user
from .extensions import db
from .models import User
from .schemas import USERNAME_RE


@click.command("create-admin")
@with_appcontext
@click.argument("username")
@click.option(
    "--password", prompt=True, hide_input=True, confirmation_prompt=True, help="prompted when absent"
)
def create_admin_command(username: str, password: str) -> None:
    """Create the admin USERNAME, or make an existing user admin and set their password."""
    if not re.match(USERNAME_RE, username):
        raise click.BadParameter(
            "3-64 characters of letters, digits, '_', '.' and '-'", param_hint="USERNAME"
        )
    if not 8 <= len(password) <= 128:
        raise click.BadParameter("8-128 characters", param_hint="--password")
    user = find_user(username)
    created = user is None
    if user is None:
        user = User(username=username)
        db.session.add(user)
    was_admin = bool(user.is_admin)
    user.is_admin = True
    user.set_password(password)
    db.session.flush()
    add_row(
        "admin.create" if created else "admin.update",
        f"cli:{_os_user()}",
        target=username,
        details={"user_id": user.id, "created": created, "was_admin": was_admin, "password_set": True},
        status_code=201 if created else 200,
        success=True,
    )
    db.session.commit()  # the account and its audit row, together
    click.echo(f"{'Created' if created else 'Updated'} admin {username!r}.")


def _os_user() -> str:
    """Who ran the command, as far as the OS says (containers may have no passwd entry)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def register_commands(app: Flask) -> None:
    app.cli.add_command(create_admin_command)
