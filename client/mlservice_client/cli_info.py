"""``mlsvc history``, ``usage``, ``models`` and ``stats``: the API's answers as short tables, or JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from .cli_session import Session, api_command


def _show(data: Any, as_json: bool, rows: Callable[[Any], list[str]]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=1, ensure_ascii=False))
    else:
        for line in rows(data):
            click.echo(line)


@click.command()
@click.option("--page", type=click.IntRange(1), default=1, show_default=True)
@click.option("--per-page", type=click.IntRange(1, 500), default=20, show_default=True)
@click.option("--since", help="from this time (ISO 8601), inclusive")
@click.option("--until", help="to this time (ISO 8601), exclusive")
@click.option("--status", "status_code", type=int, help="only this HTTP status")
@click.option("--json", "as_json", is_flag=True, help="print the API's JSON")
@click.pass_obj
@api_command
def history(session: Session, as_json: bool, **filters: Any) -> None:
    """Your own requests, newest first."""
    page = session.client().history(**filters)
    _show(page, as_json, _history_rows)


def _history_rows(page: dict[str, Any]) -> list[str]:
    rows = [f"{'WHEN':<26} {'STATUS':>6} {'FILES':>5} {'MS':>8}  RESULT"]
    for item in page["items"]:
        result = item.get("result")
        top = result.get("label", result.get("error")) if isinstance(result, dict) else result
        rows.append(
            f"{item.get('created_at', ''):<26} {item['status_code']:>6} {item['file_count']:>5} "
            f"{item['processing_time']:>8.1f}  {top if top is not None else ''}"
        )
    rows.append(
        f"page {page['page']} of {max(1, -(-page['total'] // page['per_page']))}, {page['total']} in all"
    )
    return rows


@click.command()
@click.option("--since", help="first UTC day, YYYY-MM-DD (default: 29 days before --until)")
@click.option("--until", help="last UTC day, YYYY-MM-DD (default: today)")
@click.option("--json", "as_json", is_flag=True, help="print the API's JSON")
@click.pass_obj
@api_command
def usage(session: Session, since: str | None, until: str | None, as_json: bool) -> None:
    """Your requests, images and errors per day."""
    data = session.client().usage(since, until)
    _show(data, as_json, _usage_rows)


def _usage_rows(data: dict[str, Any]) -> list[str]:
    rows = [f"{'DAY':<10} {'REQUESTS':>9} {'IMAGES':>8} {'ERRORS':>7}"]
    for day in [*data["days"], {"day": "total", **data["total"]}]:
        if day["requests"] or day["day"] == "total":
            rows.append(f"{day['day']:<10} {day['requests']:>9} {day['images']:>8} {day['errors']:>7}")
    return rows


@click.command()
@click.option("--json", "as_json", is_flag=True, help="print the API's JSON")
@click.pass_obj
@api_command
def models(session: Session, as_json: bool) -> None:
    """The models and versions you can ask for, the default marked with *."""
    _show(session.client().models(), as_json, _model_rows)


def _model_rows(models: list[dict[str, Any]]) -> list[str]:
    rows = [f"{'MODEL':<24} {'VERSION':<20} STATUS"]
    for model in models:
        for version in model.get("versions") or []:
            mark = "*" if version.get("is_default") else " "
            rows.append(f"{model['name']:<24} {version['version'] + mark:<20} {version.get('status', '')}")
    return rows


@click.command()
@click.option("--since", help="from this time (ISO 8601)")
@click.option("--until", help="to this time (ISO 8601)")
@click.pass_obj
@api_command
def stats(session: Session, since: str | None, until: str | None) -> None:
    """Request counts and latency of the whole service, as JSON (admins only)."""
    click.echo(json.dumps(session.client().stats(since=since, until=until), indent=1))
