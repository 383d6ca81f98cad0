"""Records: rollups for /stats and /stats/timeseries that survive the retention purge; status-aware indexes.

- ``history_series`` (requests, errors, images per minute/hour/day and model version), ``history_latency``
  (a latency histogram of the successful requests, same keys plus the bin), ``history_classes`` (top-1
  classes per hour and model version) and ``history_users`` (per hour and day, user and model version), filled
  from the rows already there.
- ``status_code`` added to ``ix_history_created_at`` and ``ix_history_processing_time``, so the
  percentiles of the successful requests only still read the indexes alone.

Downgrade drops the tables and puts the indexes back as they were.

Revision ID: 0005_records
Revises: 0004_model_rollout
Create Date: 2026-12-02
"""

from collections import Counter

import sqlalchemy as sa
from alembic import op

revision = "0005_records"
down_revision = "0004_model_rollout"
branch_labels = None
depends_on = None

SPANS = {"1m": "minute", "1h": "hour", "1d": "day"}
SQLITE_FORMATS = {"1m": "%Y-%m-%d %H:%M:00.000000", "1h": "%Y-%m-%d %H:00:00.000000", "1d": "%Y-%m-%d 00:00:00.000000"}


def _id():
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True)


def _model():
    return [
        sa.Column("model_name", sa.String(64), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
    ]


def _counts():
    return [sa.Column(name, sa.BigInteger(), nullable=False) for name in ("requests", "errors", "images")]


def _create_tables():
    op.create_table(
        "history_series",
        _id(),
        sa.Column("span", sa.String(2), nullable=False),
        sa.Column("bucket", sa.DateTime(), nullable=False),
        *_model(),
        *_counts(),
        sa.UniqueConstraint("span", "bucket", "model_name", "model_version", name="uq_history_series_key"),
    )
    op.create_table(
        "history_latency",
        _id(),
        sa.Column("span", sa.String(2), nullable=False),
        sa.Column("bucket", sa.DateTime(), nullable=False),
        *_model(),
        sa.Column("bin", sa.SmallInteger(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint(
            "span", "bucket", "model_name", "model_version", "bin", name="uq_history_latency_key"
        ),
    )
    op.create_table(
        "history_classes",
        _id(),
        sa.Column("bucket", sa.DateTime(), nullable=False),
        *_model(),
        sa.Column("label", sa.String(128), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("bucket", "model_name", "model_version", "label", name="uq_history_classes_key"),
    )
    op.create_table(
        "history_users",
        _id(),
        sa.Column("span", sa.String(2), nullable=False),
        sa.Column("bucket", sa.DateTime(), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        *_model(),
        *_counts(),
        sa.UniqueConstraint(
            "span", "bucket", "username", "model_name", "model_version", name="uq_history_users_key"
        ),
    )


def _backfill(conn):
    """The rollups of the rows already there; latency bins are floor(ln(ms) * 20), as in
    control_api.records.rollup_writes.latency_bin."""
    sqlite = conn.dialect.name == "sqlite"
    clamp = "max" if sqlite else "greatest"
    model = "coalesce(model_name, ''), coalesce(model_version, '')"
    counts = "count(*), sum(CASE WHEN status_code >= 400 THEN 1 ELSE 0 END), coalesce(sum(file_count), 0)"
    for span, unit in SPANS.items():
        bucket = f"strftime('{SQLITE_FORMATS[span]}', created_at)" if sqlite else f"date_trunc('{unit}', created_at)"
        conn.execute(
            sa.text(
                "INSERT INTO history_series (span, bucket, model_name, model_version, requests, errors, images) "
                f"SELECT '{span}', {bucket}, {model}, {counts} FROM history GROUP BY 1, 2, 3, 4"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO history_latency (span, bucket, model_name, model_version, bin, count) "
                f"SELECT '{span}', {bucket}, {model}, "
                f"CAST(floor(ln({clamp}(processing_time, 0.001)) * 20) AS INTEGER), count(*) "
                "FROM history WHERE status_code < 400 GROUP BY 1, 2, 3, 4, 5"
            )
        )
        if span != "1m":
            conn.execute(
                sa.text(
                    "INSERT INTO history_users (span, bucket, username, model_name, model_version, requests, "
                    f"errors, images) SELECT '{span}', {bucket}, username, {model}, {counts} FROM history "
                    "GROUP BY 1, 2, 3, 4, 5"
                )
            )
    history = sa.table(
        "history",
        sa.column("created_at", sa.DateTime),
        sa.column("model_name", sa.String),
        sa.column("model_version", sa.String),
        sa.column("status_code", sa.Integer),
        sa.column("result", sa.JSON),
    )
    found = Counter()
    rows = conn.execute(
        sa.select(history)
        .where(history.c.status_code < 400, history.c.result.is_not(None))
        .execution_options(yield_per=5000)
    )
    for created, model_name, version, _status, result in rows:
        items = result if isinstance(result, list) else [result]
        hour = created.replace(minute=0, second=0, microsecond=0)
        for item in items:
            if isinstance(item, dict) and item.get("label"):
                found[(hour, model_name or "", version or "", str(item["label"])[:128])] += 1
    classes = sa.table(
        "history_classes",
        sa.column("bucket", sa.DateTime),
        sa.column("model_name", sa.String),
        sa.column("model_version", sa.String),
        sa.column("label", sa.String),
        sa.column("count", sa.BigInteger),
    )
    values = [
        {"bucket": b, "model_name": m, "model_version": v, "label": label, "count": n}
        for (b, m, v, label), n in found.items()
    ]
    if values:
        conn.execute(classes.insert(), values)



def _indexes(with_status):
    extra = ["status_code"] if with_status else []
    op.drop_index("ix_history_created_at", table_name="history")
    op.create_index("ix_history_created_at", "history", ["created_at", "processing_time", *extra])
    op.drop_index("ix_history_processing_time", table_name="history")
    op.create_index(
        "ix_history_processing_time",
        "history",
        ["processing_time", "created_at", "model_name", "model_version", *extra],
    )


def upgrade():
    _create_tables()
    _backfill(op.get_bind())
    _indexes(with_status=True)


def downgrade():
    _indexes(with_status=False)
    for table in ("history_users", "history_classes", "history_latency", "history_series"):
        op.drop_table(table)
