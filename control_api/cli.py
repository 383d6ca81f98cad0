"""Flask CLI commands: ``flask --app control_api <command>``."""

from __future__ import annotations

import getpass
import re
import statistics
import time

import click
import sqlalchemy as sa
from flask import Flask, current_app
from flask.cli import with_appcontext
from flask_jwt_extended import create_access_token

from .audit import add_row
from .auth import find_user
from .extensions import db
from .models import History, User
from .schemas import USERNAME_RE
from .seeding import seed_history
from .stats import compute_stats


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


@click.command("seed-history")
@with_appcontext
@click.option("--rows", default=1_000_000, show_default=True, help="synthetic rows to add")
@click.option("--days", default=30.0, show_default=True, help="spread over the last DAYS days")
@click.option("--yes", is_flag=True, help="confirm: adds fake rows to DATABASE_URL's history")
def seed_history_command(rows: int, days: float, yes: bool) -> None:
    """Add synthetic history rows (for benchmarks, on a scratch database)."""
    if not yes:
        raise click.UsageError("this writes fake history into DATABASE_URL; pass --yes on a scratch database")
    seconds = seed_history(rows, days)
    click.echo(f"Seeded {rows} rows in {seconds:.1f} s.")


@click.command("bench-stats")
@with_appcontext
@click.option("--repeat", default=7, show_default=True)
def bench_stats_command(repeat: int) -> None:
    """Time /stats (unfiltered, and over the last day) through the full HTTP stack, median of REPEAT."""
    total = db.session.scalar(sa.select(sa.func.count()).select_from(History))
    admin = db.session.scalar(sa.select(User).where(User.is_admin.is_(True)))
    if admin is None:
        raise click.UsageError("create an admin first (flask --app control_api create-admin NAME)")
    token = create_access_token(identity=str(admin.id), additional_claims={"username": admin.username})
    client = current_app.test_client()
    day_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 86400))
    for label, url in (("all rows", "/stats"), ("last 24 h", f"/stats?since={day_ago}")):
        timings = []
        for _ in range(repeat):
            began = time.perf_counter()
            response = client.get(url, headers={"Authorization": f"Bearer {token}"})
            timings.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200, response.get_json()
        click.echo(
            f"/stats {label}: median {statistics.median(timings):.1f} ms, "
            f"min {min(timings):.1f} ms over {repeat} runs ({total} history rows, {db.engine.dialect.name})"
        )
    began = time.perf_counter()
    compute_stats()
    click.echo(f"compute_stats() alone: {(time.perf_counter() - began) * 1000:.1f} ms")


def register_commands(app: Flask) -> None:
    for command in (create_admin_command, seed_history_command, bench_stats_command):
        app.cli.add_command(command)
