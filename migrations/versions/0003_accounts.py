"""Accounts: case-insensitive unique usernames, disabled accounts, token revocation, a user's own history.

- ``users.disabled`` and ``users.token_version`` (carried by every token; bumped to revoke them).
- A unique index on ``lower(username)``: "Alice" and "alice" can no longer both exist. Names that already
  clash are made unique first, deterministically: the account created first (lowest id) keeps its name,
  each later one is renamed to its own spelling plus ``-2``, ``-3``, ... (the first suffix free in any
  case). Each rename is logged, written to the audit log (action ``user.rename``, actor
  ``migration:0003_accounts``) and applied to that user's history rows; the renamed user logs in with the
  new name (their old tokens stop working, as the name is part of them).
- ``ix_history_user_id_created_at``: a user's own rows and their daily usage (covering for the latter).

Downgrade drops all three; renamed users keep their new names.

Revision ID: 0003_accounts
Revises: 0002
Create Date: 2026-12-02
"""

import logging
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0003_accounts"
down_revision = "0002"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")
MAX_USERNAME = 64
ACTOR = "migration:0003_accounts"

users = sa.table("users", sa.column("id", sa.Integer), sa.column("username", sa.String))
history = sa.table("history", sa.column("user_id", sa.Integer), sa.column("username", sa.String))
audit_log = sa.table(
    "audit_log",
    sa.column("created_at", sa.DateTime),
    sa.column("actor", sa.String),
    sa.column("action", sa.String),
    sa.column("target", sa.String),
    sa.column("details", sa.JSON),
    sa.column("status_code", sa.SmallInteger),
    sa.column("success", sa.Boolean),
)


def _free_name(name, taken):
    """``name`` plus the first ``-N`` (N >= 2) whose lower case is not in ``taken``, within 64 characters."""
    n = 2
    while True:
        suffix = f"-{n}"
        candidate = name[: MAX_USERNAME - len(suffix)] + suffix
        if candidate.lower() not in taken:
            return candidate
        n += 1


def _rename_clashes(conn):
    rows = conn.execute(sa.select(users.c.id, users.c.username).order_by(users.c.id)).all()
    taken = {name.lower() for _, name in rows}
    kept = set()
    for user_id, name in rows:
        if name.lower() not in kept:
            kept.add(name.lower())
            continue
        new = _free_name(name, taken)
        taken.add(new.lower())
        kept.add(new.lower())
        conn.execute(sa.update(users).where(users.c.id == user_id).values(username=new))
        conn.execute(sa.update(history).where(history.c.user_id == user_id).values(username=new))
        conn.execute(
            sa.insert(audit_log).values(
                created_at=datetime.now(UTC).replace(tzinfo=None),
                actor=ACTOR,
                action="user.rename",
                target=new,
                details={"user_id": user_id, "old": name, "new": new, "reason": "username clashes in case"},
                status_code=200,
                success=True,
            )
        )
        log.warning(
            "user %d: username %r clashes with an older account in case; renamed to %r", user_id, name, new
        )


def upgrade():
    op.add_column("users", sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("users", sa.Column("token_version", sa.Integer(), nullable=False, server_default="0"))
    _rename_clashes(op.get_bind())
    op.create_index("uq_users_username_lower", "users", [sa.text("lower(username)")], unique=True)
    op.create_index(
        "ix_history_user_id_created_at", "history", ["user_id", "created_at", "status_code", "file_count"]
    )


def downgrade():
    op.drop_index("ix_history_user_id_created_at", table_name="history")
    op.drop_index("uq_users_username_lower", table_name="users")
    op.drop_column("users", "token_version")
    op.drop_column("users", "disabled")
