"""Flask-Migrate: upgrade, then downgrade, on SQLite and PostgreSQL; the migrated schema is the models'."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy.exc import IntegrityError

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
ACCOUNT_COLUMNS = {"disabled", "token_version"}


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


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based index")
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
            # SQLite cannot reflect the index on lower(username): compare_metadata skips it (the warnings
            # ignored above); test_accounts_migration checks that index on both backends.
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


INSERT_USER = (
    "INSERT INTO users (username, password_hash, is_admin, created_at) "
    "VALUES (:name, 'x', false, '2026-01-01 00:00:00')"
)


def _names(conn: sa.Connection) -> list[tuple[int, str]]:
    return [(int(i), str(n)) for i, n in conn.execute(sa.text("SELECT id, username FROM users ORDER BY id"))]


def test_accounts_migration_renames_case_clashes(empty_database: str, tmp_path: Path) -> None:
    """0003: names that clash in case are made unique (the oldest keeps its name; later ones get the first
    free -N), with their history rows and an audit row each; then no new clash can be inserted."""
    app = make_app(empty_database, tmp_path / "instance")
    long_a, long_b = "x" * 64, "X" * 64
    existing = ["alice", "Alice", "bob", "ALICE", "alice-2", long_a, long_b]
    with app.app_context():
        try:
            upgrade(directory=str(MIGRATIONS_DIR), revision="0002")
            with db.engine.begin() as conn:
                for name in existing:  # ids 1 to 7, in this order
                    conn.execute(sa.text(INSERT_USER), {"name": name})
                conn.execute(
                    sa.text(
                        "INSERT INTO history (created_at, request_type, user_id, username, file_count, "
                        "processing_time, status_code) VALUES ('2026-01-01 00:00:00', 'forward', 2, 'Alice', "
                        "1, 1.0, 200)"
                    )
                )

            upgrade(directory=str(MIGRATIONS_DIR), revision="0003_accounts")
            with db.engine.begin() as conn:
                assert _names(conn) == [
                    (1, "alice"),
                    (2, "Alice-3"),  # "alice-2" is taken, in any case
                    (3, "bob"),
                    (4, "ALICE-4"),
                    (5, "alice-2"),
                    (6, long_a),
                    (7, "X" * 62 + "-2"),  # still 64 characters
                ]
                assert conn.execute(sa.text("SELECT username FROM history")).scalar() == "Alice-3"
                renames = conn.execute(
                    sa.text("SELECT actor, target FROM audit_log WHERE action = 'user.rename' ORDER BY id")
                ).all()
                assert [tuple(r) for r in renames] == [
                    ("migration:0003_accounts", "Alice-3"),
                    ("migration:0003_accounts", "ALICE-4"),
                    ("migration:0003_accounts", "X" * 62 + "-2"),
                ]
                defaults = conn.execute(sa.text("SELECT DISTINCT disabled, token_version FROM users")).all()
                assert [(bool(d), int(v)) for d, v in defaults] == [(False, 0)]
            with pytest.raises(IntegrityError, match="uq_users_username_lower"), db.engine.begin() as conn:
                conn.execute(sa.text(INSERT_USER), {"name": "BOB"})

            downgrade(directory=str(MIGRATIONS_DIR), revision="0002")
            inspector = sa.inspect(db.engine)
            assert not ACCOUNT_COLUMNS & {c["name"] for c in inspector.get_columns("users")}
            assert "ix_history_user_id_created_at" not in {
                ix["name"] for ix in inspector.get_indexes("history")
            }
            with db.engine.begin() as conn:
                assert _names(conn)[1] == (2, "Alice-3")  # renames stay
                conn.execute(sa.text(INSERT_USER), {"name": "BOB"})  # case clashes are possible again
        finally:
            db.session.remove()
            db.engine.dispose()
