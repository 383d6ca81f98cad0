"""The reconciler: puts TorchServe back in the desired state kept in the database (``desired_state.py``).

TorchServe runs with --ncs (no config snapshot), so after a restart it serves only the models of its
config file: every version registered through the API is gone, and so are default changes and worker
counts. ``reconcile()`` compares TorchServe with the ``model_versions`` rows and registers the missing
versions (from their archive, with their batching), scales those whose workers differ and sets the
default back; it logs each step and writes one audit row (action ``model.reconcile``, actor
``system:reconciler``) when it changed anything. Running it when nothing is missing changes nothing.

Under gunicorn, one worker per host (the one that takes ``instance/reconciler.lock``) runs it every
``RECONCILE_SECONDS`` (15; 0: never) on a background thread, so a restarted TorchServe gets its models
back within that time. ``flask --app control_api reconcile-models`` runs it once; ``--watch SECONDS``
keeps running it. A version that another replica registered meanwhile answers 409, which counts as
present.
"""

from __future__ import annotations

import fcntl
import itertools
import logging
import os
import threading
import time
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from ..audit.trail import add_row
from ..errors import APIError
from ..extensions import db
from ..torchserve.answers import explanation
from . import desired_state
from .catalog import call, describe, quoted
from .tables import ModelVersionState

log = logging.getLogger(__name__)
ACTOR = "system:reconciler"


def _register(row: ModelVersionState) -> str:
    params: dict[str, Any] = {"url": row.archive, "initial_workers": row.min_workers, "synchronous": "true"}
    for field in ("batch_size", "max_batch_delay", "response_timeout"):
        if getattr(row, field) is not None:
            params[field] = getattr(row, field)
    result = call("POST", "/models", params, slow=True)
    if result.status not in (200, 409):
        raise APIError(502, "reconcile_failed", f"Registering {row.archive}: {explanation(result)}")
    return f"registered {row.model_name} {row.model_version} from {row.archive}"


def _scale(row: ModelVersionState) -> str:
    params = {"min_worker": row.min_workers, "max_worker": row.max_workers, "synchronous": "true"}
    path = f"/models/{quoted(row.model_name)}/{quoted(row.model_version, 'version')}"
    result = call("PUT", path, params, slow=True)
    if result.status != 200:
        raise APIError(
            502, "reconcile_failed", f"Scaling {row.model_name} {row.model_version}: {explanation(result)}"
        )
    return f"scaled {row.model_name} {row.model_version} to {row.min_workers}-{row.max_workers} workers"


def _model(name: str) -> dict[str, Any] | None:
    try:
        return describe(name)
    except APIError as exc:
        if exc.status_code == 404:
            return None
        raise


def reconcile_model(name: str, rows: list[ModelVersionState]) -> list[str]:
    done = []
    model = _model(name)
    present = {v["version"]: v for v in (model or {}).get("versions", [])}
    for row in rows:
        entry = present.get(row.model_version)
        if entry is None:
            done.append(_register(row))
            if row.max_workers != row.min_workers:
                done.append(_scale(row))
        elif (entry["min_workers"], entry["max_workers"]) != (row.min_workers, row.max_workers):
            done.append(_scale(row))
    default = next((row.model_version for row in rows if row.is_default), None)
    if default is not None and (_model(name) or {}).get("default_version") != default:
        result = call("PUT", f"/models/{quoted(name)}/{quoted(default, 'version')}/set-default")
        if result.status != 200:
            raise APIError(502, "reconcile_failed", f"Setting {name}'s default: {explanation(result)}")
        done.append(f"set the default version of {name} to {default}")
    return done


def reconcile() -> list[str]:
    """Make TorchServe match the desired state; returns what it did (empty: nothing was missing)."""
    done: list[str] = []
    rows = desired_state.wanted()
    db.session.commit()
    for name, group in itertools.groupby(rows, key=lambda row: row.model_name):
        done += reconcile_model(name, list(group))
    for step in done:
        log.warning("reconciler: %s", step)
    if done:
        add_row(
            "model.reconcile",
            ACTOR,
            target="torchserve",
            details={"steps": done},
            status_code=200,
            success=True,
        )
        db.session.commit()
    return done


@click.command("reconcile-models")
@click.option("--watch", type=float, default=0.0, help="Repeat every SECONDS (0: run once).")
@with_appcontext
def reconcile_command(watch: float) -> None:
    """Put back in TorchServe every model version, worker count and default registered through the API."""
    while True:
        try:
            done = reconcile()
            click.echo("; ".join(done) if done else "TorchServe matches the desired state.")
        except APIError as exc:
            db.session.rollback()
            click.echo(f"reconcile failed: {exc.message}", err=True)
            if not watch:
                raise SystemExit(1) from exc
        if not watch:
            return
        db.session.remove()
        time.sleep(watch)
        current_app.logger.debug("reconciling again")


def _loop(app: Flask, interval: float) -> None:
    while True:
        time.sleep(interval)
        with app.app_context():
            try:
                reconcile()
            except Exception as exc:  # TorchServe down: try again next time
                log.info("reconciler: %s", getattr(exc, "message", exc))
            finally:
                db.session.remove()


def start_background(app: Flask) -> bool:
    """In a gunicorn worker: run the reconciler every RECONCILE_SECONDS if this worker takes the host's
    lock (held until the worker exits). Returns whether it did."""
    interval = float(app.config["RECONCILE_SECONDS"])
    if interval <= 0:
        return False
    fd = os.open(os.path.join(app.instance_path, "reconciler.lock"), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    threading.Thread(target=_loop, args=(app, interval), name="reconciler", daemon=True).start()
    return True
