"""Scratch PostgreSQL databases for tests and the bench: created empty, dropped with everything in them."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy.engine import make_url


@contextmanager
def scratch_postgres_database(server_url: str, prefix: str = "scratch") -> Iterator[str]:
    """A fresh, empty database ``<prefix>_<random>`` on ``server_url``'s server, dropped afterwards.

    ``server_url`` is any SQLAlchemy URL of that server (its database part is ignored); the URL of the new
    database comes back, with the same driver, so parallel runs never share a database.
    """
    url = make_url(server_url)
    server = url.set(drivername="postgresql").render_as_string(hide_password=False)  # what psycopg reads
    name = f"{prefix}_{secrets.token_hex(6)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
