"""Flask-Migrate: upgrade, then downgrade, on SQLite and PostgreSQL; the migrated schema is the models'."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from control_api.extensions import MIGRATIONS_DIR, db
from tests.control_api.conftest import configured_pg_url, make_app, scratch_pg_database

EXPECTED_INDEXES = {
    "ix_history_created_at",
    "ix_history_status_code_created_at",
    "ix_history_username_created_at",
    "ix_history_model_created_at",
    "ix_history_processing_time",
    "ix_history_request_id",
}
AUDIT_INDEXES = {"ix_audit_log_created_at", "ix_audit_log_action_created_at", "ix_audit_log_actor_created_at"}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrate.db'}"
        return
    base = configured_pg_url()
    if not base:
        pytest.skip("TEST_DATABASE_URL is not set")
    with scratch_pg_database(base) as url:
        yield url


def test_upgrade_then_downgrade(empty_database: str, tmp_path: Path) -> None:
    app = make_app(empty_database, tmp_path / "instance")
    with app.app_context():
        try:
            upgrade(directory=str(MIGRATIONS_DIR))
            inspector = sa.inspect(db.engine)
            assert {"users", "history", "history_rollup", "audit_log", "alembic_version"} <= set(
                inspector.get_table_names()
            )
            assert {ix["name"] for ix in inspector.get_indexes("history")} >= EXPECTED_INDEXES
            assert {ix["name"] for ix in inspector.get_indexes("audit_log")} == AUDIT_INDEXES
            with db.engine.connect() as conn:
                diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
            assert diff == [], f"migrations and models disagree: {diff}"

            # One step back: 0002 (audit log, request_id index) goes, the 0001 schema stays.
            downgrade(directory=str(MIGRATIONS_DIR), revision="0001")
            inspector = sa.inspect(db.engine)
            assert "audit_log" not in inspector.get_table_names()
            assert "ix_history_request_id" not in {ix["name"] for ix in inspector.get_indexes("history")}
            assert "history" in inspector.get_table_names()

            downgrade(directory=str(MIGRATIONS_DIR), revision="base")
            assert set(sa.inspect(db.engine).get_table_names()) == {"alembic_version"}

            upgrade(directory=str(MIGRATIONS_DIR))  # and back up again, cleanly
            assert "history" in sa.inspect(db.engine).get_table_names()
        finally:
            db.session.remove()
            db.engine.dispose()


def test_create_app_does_not_touch_the_schema(tmp_path: Path) -> None:
    """Migrations run in scripts/boot.sh, once; create_app (in every worker) must not create tables."""
    url = f"sqlite:///{tmp_path / 'untouched.db'}"
    app = make_app(url, tmp_path / "instance")
    with app.app_context():
        assert sa.inspect(db.engine).get_table_names() == []
        db.engine.dispose()
