"""Extension objects, created once here and bound to the app in ``create_app``."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from flask import Flask
from flask_jwt_extended import JWTManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData, event
from sqlalchemy.orm import DeclarativeBase

from .torchserve.client import TorchServeExtension

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

# Deterministic constraint names, so migrations can drop and alter them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base carrying the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)
migrate = Migrate(directory=str(MIGRATIONS_DIR))
jwt = JWTManager()
torchserve = TorchServeExtension()


def init_sqlite(app: Flask) -> None:
    """SQLite pragmas on every new connection of the app's engine (no-op on other databases).

    WAL lets readers run beside the writer; busy_timeout makes writers queue instead of failing.
    ``synchronous`` is SQLITE_SYNCHRONOUS: NORMAL (default) skips the fsync per commit, which WAL makes
    safe from corruption; a power loss or OS crash (not an app crash) may lose the last commits. FULL
    fsyncs every commit (one disk flush for each /forward).
    """
    with app.app_context():
        engine = db.engine
    if engine.dialect.name != "sqlite":
        return
    synchronous = app.config["SQLITE_SYNCHRONOUS"]

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        if not isinstance(dbapi_connection, sqlite3.Connection):
            return
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()
