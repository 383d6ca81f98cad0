"""``mlsvc``: the command-line client. ``mlsvc --help`` and ``mlsvc COMMAND --help`` describe each command;
``mlservice_client.exit_codes`` lists the exit codes."""

from __future__ import annotations

import click

from . import config, exit_codes
from .cli_classify import classify
from .cli_info import history, models, stats, usage
from .cli_rollout import compare, rollout
from .cli_session import Session, api_command
from .client import Client


@click.group(
    epilog=f"Exit codes:\n\n{exit_codes.HELP}", context_settings={"help_option_names": ["-h", "--help"]}
)
@click.option(
    "--url", envvar="MLSVC_URL", help=f"API base URL [env MLSVC_URL; default: login's, {config.DEFAULT_URL}]"
)
@click.option("--token", envvar="MLSVC_TOKEN", help="a token to use instead of login's [env MLSVC_TOKEN]")
@click.option("--timeout", type=float, default=120.0, show_default=True, help="seconds per HTTP request")
@click.option(
    "--deadline", type=float, default=120.0, show_default=True,
    help="seconds to keep retrying a request answered 429 or 503 (honouring Retry-After)",
)  # fmt: skip
@click.version_option(package_name="mlservice-client")
@click.pass_context
def cli(ctx: click.Context, url: str | None, token: str | None, timeout: float, deadline: float) -> None:
    """Command-line client of the ML Service API: classify images, see your history and usage.

    Start with `mlsvc login --url http://HOST:8000 --username NAME`."""
    ctx.obj = Session(url, token, timeout, deadline)


@cli.command()
@click.option("--username", prompt=True, help="your account name")
@click.password_option(
    "--password", envvar="MLSVC_PASSWORD", confirmation_prompt=False, help="[env MLSVC_PASSWORD; else asked]"
)
@click.pass_obj
@api_command
def login(session: Session, username: str, password: str) -> None:
    """Get a token and keep it (with the URL and username) in the user config directory, mode 0600."""
    token = Client(session.url, username=username, password=password, timeout=session.timeout).login()
    session.stored = config.Stored(session.url, username, token)
    path = config.save(session.stored)
    click.echo(f"Logged in to {session.url} as {username}; token stored in {path}", err=True)


@cli.command()
def logout() -> None:
    """Forget the stored token."""
    click.echo("Logged out." if config.forget() else "Not logged in.", err=True)


for command in (classify, history, usage, models, stats, rollout, compare):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="mlsvc")
