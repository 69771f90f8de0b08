"""Initial schema: experiments, runs, status history, params, tags, metrics, artifacts.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _run_fk(primary_key: bool = False) -> sa.Column:
    return sa.Column(
        "run_id",
        sa.String(32),
        sa.ForeignKey("runs.id", ondelete="CASCADE"),
        nullable=False,
        primary_key=primary_key,
    )


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("created_at", sa.Double, nullable=False),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("experiment_id", sa.Integer, sa.ForeignKey("experiments.id"), nullable=False),
        sa.Column("name", sa.String(255)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("compute", sa.String(255), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("started_at", sa.Double),
        sa.Column("ended_at", sa.Double),
        sa.Column("exit_code", sa.Integer),
        sa.Column("reason", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("snapshot_id", sa.String(128)),
        sa.Column("parent_id", sa.String(32), sa.ForeignKey("runs.id")),
        sa.Column("git", sa.JSON),
        sa.Column("host", sa.String(255)),
        sa.Column("supervisor_pid", sa.Integer),
        sa.Column("pgid", sa.Integer),
        sa.Column("heartbeat_at", sa.Double),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("cancel_reason", sa.Text),
    )
    op.create_index("ix_runs_experiment_id_created_at", "runs", ["experiment_id", "created_at"])
    op.create_index(
        "ix_runs_compute_status_created_at", "runs", ["compute", "status", "created_at"]
    )
    op.create_index("ix_runs_status", "runs", ["status"])
    op.create_index("ix_runs_parent_id", "runs", ["parent_id"])
    op.create_index("ix_runs_created_at", "runs", ["created_at"])
    op.create_table(
        "status_history",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        _run_fk(),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("time", sa.Double, nullable=False),
        sa.Column("reason", sa.Text),
    )
    op.create_index("ix_status_history_run_id_id", "status_history", ["run_id", "id"])
    for name in ("params", "tags"):
        op.create_table(
            name,
            _run_fk(primary_key=True),
            sa.Column("key", sa.String(255), primary_key=True),
            sa.Column("value", sa.Text, nullable=False),
        )
    op.create_table(
        "metrics",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        _run_fk(),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("timestamp", sa.Double, nullable=False),
        sa.Column("value", sa.Double),
    )
    op.create_index(
        "ix_metrics_run_id_key_rank_step_timestamp",
        "metrics",
        ["run_id", "key", "rank", "step", "timestamp"],
    )
    op.create_table(
        "latest_metrics",
        _run_fk(primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("rank", sa.Integer, primary_key=True),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("timestamp", sa.Double, nullable=False),
        sa.Column("value", sa.Double),
    )
    op.create_table(
        "artifacts",
        _run_fk(primary_key=True),
        sa.Column("path", sa.String(1024), primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for name in (
        "artifacts",
        "latest_metrics",
        "metrics",
        "tags",
        "params",
        "status_history",
        "runs",
        "experiments",
    ):
        op.drop_table(name)
