"""Model rollout: uploaded archives, the desired state of registered versions, rollout policies, shadow
results.

Revision ID: 0004_model_rollout
Revises: 0003_accounts
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_model_rollout"
down_revision = "0003_accounts"
branch_labels = None
depends_on = None

BigIntId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade():
    op.create_table(
        "model_archives",
        sa.Column("id", BigIntId, nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("model_name", sa.String(length=64), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(), nullable=False),
        sa.Column("uploaded_by", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_archives")),
        sa.UniqueConstraint("file_name", name=op.f("uq_model_archives_file_name")),
    )
    op.create_table(
        "model_versions",
        sa.Column("model_name", sa.String(length=64), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("archive", sa.String(length=255), nullable=False),
        sa.Column("min_workers", sa.Integer(), nullable=False),
        sa.Column("max_workers", sa.Integer(), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=True),
        sa.Column("max_batch_delay", sa.Integer(), nullable=True),
        sa.Column("response_timeout", sa.Integer(), nullable=True),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("model_name", "model_version", name=op.f("pk_model_versions")),
    )
    op.create_table(
        "model_rollouts",
        sa.Column("model_name", sa.String(length=64), nullable=False),
        sa.Column("stable", sa.String(length=64), nullable=False),
        sa.Column("canary", sa.String(length=64), nullable=False),
        sa.Column("canary_percent", sa.Float(), nullable=False),
        sa.Column("shadow_version", sa.String(length=64), nullable=True),
        sa.Column("shadow_percent", sa.Float(), nullable=False),
        sa.Column("guard", sa.JSON(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("failed_checks", sa.Integer(), nullable=False),
        sa.Column("last_check_at", sa.DateTime(), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("updated_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("model_name", name=op.f("pk_model_rollouts")),
    )
    op.create_table(
        "shadow_results",
        sa.Column("id", BigIntId, nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("model_name", sa.String(length=64), nullable=False),
        sa.Column("stable_version", sa.String(length=64), nullable=False),
        sa.Column("shadow_version", sa.String(length=64), nullable=False),
        sa.Column("stable_class", sa.Integer(), nullable=True),
        sa.Column("shadow_class", sa.Integer(), nullable=True),
        sa.Column("agree", sa.Boolean(), nullable=True),
        sa.Column("stable_ms", sa.Float(), nullable=True),
        sa.Column("shadow_ms", sa.Float(), nullable=True),
        sa.Column("shadow_status", sa.SmallInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shadow_results")),
    )
    op.create_index(
        "ix_shadow_results_model_created_at", "shadow_results", ["model_name", "created_at"]
    )


def downgrade():
    op.drop_index("ix_shadow_results_model_created_at", table_name="shadow_results")
    op.drop_table("shadow_results")
    op.drop_table("model_rollouts")
    op.drop_table("model_versions")
    op.drop_table("model_archives")
