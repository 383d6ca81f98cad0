"""``mlsvc rollout ...`` and ``mlsvc compare``: the admins' canary rollouts, answers printed as JSON."""

from __future__ import annotations

import json
from typing import Any

import click

from .cli_session import Session, api_command


def _print(data: Any) -> None:
    click.echo(json.dumps(data, indent=1, ensure_ascii=False))


@click.group()
def rollout() -> None:
    """Canary rollouts of a model's versions (admins only)."""


@rollout.command()
@click.argument("model")
@click.pass_obj
@api_command
def show(session: Session, model: str) -> None:
    """The rollout policy in force for MODEL."""
    _print(session.client().rollout(model))


@rollout.command()
@click.argument("model")
@click.option("--stable", required=True, help="the version most users keep")
@click.option("--canary", required=True, help="the version being rolled out")
@click.option(
    "--percent",
    "canary_percent",
    type=click.FloatRange(0, 100),
    required=True,
    help="users on the canary, 0-100",
)
@click.option("--shadow", "shadow_version", help="also send a copy of stable traffic to this version")
@click.option(
    "--shadow-percent", type=click.FloatRange(0, 100), default=0.0, show_default=True, help="share shadowed"
)
@click.option("--guard", help="automatic rollback settings as JSON, e.g. '{\"max_error_rate\": 0.05}'")
@click.pass_obj
@api_command
def start(
    session: Session, model: str, stable: str, canary: str, canary_percent: float,
    shadow_version: str | None, shadow_percent: float, guard: str | None,
) -> None:  # fmt: skip
    """Send --percent of MODEL's users to --canary, the rest to --stable (replaces any earlier policy)."""
    try:
        guard_settings = json.loads(guard) if guard else None
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--guard") from exc
    _print(
        session.client().start_rollout(
            model,
            stable=stable,
            canary=canary,
            canary_percent=canary_percent,
            shadow_version=shadow_version,
            shadow_percent=shadow_percent,
            guard=guard_settings,
        )
    )


@rollout.command()
@click.argument("model")
@click.pass_obj
@api_command
def promote(session: Session, model: str) -> None:
    """Make MODEL's canary its default version and clear the policy."""
    _print(session.client().promote(model))


@rollout.command()
@click.argument("model")
@click.pass_obj
@api_command
def rollback(session: Session, model: str) -> None:
    """Send all of MODEL's traffic to the stable version."""
    _print(session.client().rollback(model))


@rollout.command()
@click.argument("model")
@click.pass_obj
@api_command
def clear(session: Session, model: str) -> None:
    """Clear MODEL's policy: its unpinned traffic goes to the default version again."""
    _print(session.client().clear_rollout(model))


@click.command()
@click.argument("model")
@click.argument("version_a")
@click.argument("version_b")
@click.option("--since", help="from this time (ISO 8601; default: 24 hours ago)")
@click.option("--until", help="to this time (ISO 8601)")
@click.pass_obj
@api_command
def compare(
    session: Session, model: str, version_a: str, version_b: str, since: str | None, until: str | None
) -> None:
    """Two versions of MODEL side by side: requests, errors, latency, agreement (admins only)."""
    _print(session.client().compare(model, version_a, version_b, since, until))
