"""The desired state of the models registered through the API, kept in the database for the reconciler:
which versions, from which archive, with how many workers and what batching, and which is the default.

The /models views call these after TorchServe accepted a change, in the request's transaction.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..extensions import db
from ..tables import utcnow
from .tables import ModelVersionState


def registered(name: str, version: str, archive: str, settings: dict[str, Any]) -> None:
    """A version TorchServe registered (``settings``: initial_workers, batch_size, ...)."""
    forget(name, version)
    workers = int(settings.get("initial_workers") or 1)
    db.session.add(
        ModelVersionState(
            model_name=name,
            model_version=version,
            archive=archive,
            min_workers=workers,
            max_workers=workers,
            batch_size=settings.get("batch_size"),
            max_batch_delay=settings.get("max_batch_delay"),
            response_timeout=settings.get("response_timeout"),
            is_default=False,
            updated_at=utcnow(),
        )
    )
    db.session.commit()


def scaled(name: str, version: str, low: int, high: int) -> None:
    db.session.execute(
        sa.update(ModelVersionState)
        .where(ModelVersionState.model_name == name, ModelVersionState.model_version == version)
        .values(min_workers=low, max_workers=high, updated_at=utcnow())
    )
    db.session.commit()


def made_default(name: str, version: str) -> None:
    rows = sa.update(ModelVersionState).where(ModelVersionState.model_name == name)
    db.session.execute(
        rows.values(is_default=ModelVersionState.model_version == version, updated_at=utcnow())
    )
    db.session.commit()


def forget(name: str, version: str) -> None:
    db.session.execute(
        sa.delete(ModelVersionState).where(
            ModelVersionState.model_name == name, ModelVersionState.model_version == version
        )
    )
    db.session.commit()


def wanted() -> list[ModelVersionState]:
    """Every desired version, by model then version."""
    query = sa.select(ModelVersionState).order_by(
        ModelVersionState.model_name, ModelVersionState.model_version
    )
    return list(db.session.scalars(query))
