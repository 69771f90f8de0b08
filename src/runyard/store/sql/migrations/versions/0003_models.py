"""Model registry and endpoints: models (versions), model_aliases, endpoints.

Revision ID: 0003
Revises: 0002
Create Date: 2025-01-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("framework", sa.String(64)),
        sa.Column("framework_version", sa.String(64)),
        sa.Column("description", sa.Text),
        sa.Column("files", sa.JSON, nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("properties", sa.JSON, nullable=False),
        sa.Column("run_id", sa.String(32)),
        sa.Column("run_params", sa.JSON, nullable=False),
        sa.Column("run_metrics", sa.JSON, nullable=False),
        sa.Column("source", sa.Text),
    )
    op.create_index("ix_models_run_id", "models", ["run_id"])
    op.create_table(
        "model_aliases",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("alias", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.ForeignKeyConstraint(
            ["name", "version"],
            ["models.name", "models.version"],
            name="fk_model_aliases_name_models",
        ),
    )
    op.create_table(
        "endpoints",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("traffic", sa.JSON, nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("hostname", sa.String(255)),
        sa.Column("pid", sa.Integer),
        sa.Column("port", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
    )


def downgrade() -> None:
    for name in ("endpoints", "model_aliases", "models"):
        op.drop_table(name)
