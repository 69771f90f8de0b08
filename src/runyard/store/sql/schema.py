"""The SQL store's tables (SQLAlchemy Core). Migrations in ``migrations/versions`` create them.

Conventions:

- Times are seconds since the epoch as double precision floats (``time.time()``).
- ``metrics.value`` and ``latest_metrics.value`` hold NaN as NULL. SQLite turns a NaN it is
  given into NULL anyway, so both backends use the same encoding; a logged value is never
  otherwise missing. ±inf are stored as such.
- ``metrics`` keeps the whole history; ``latest_metrics`` holds the value with the greatest
  ``(step, timestamp)`` per ``(run_id, key, rank)`` and is what listings read.
"""

from __future__ import annotations

import sqlalchemy as sa

#: Constraint names Alembic can find again in later migrations.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

#: A 64-bit autoincrementing key that is SQLite's rowid there.
_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

experiments = sa.Table(
    "experiments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("created_at", sa.Double, nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
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
    sa.Column("git", sa.JSON(none_as_null=True)),
    sa.Column("host", sa.String(255)),
    sa.Column("supervisor_pid", sa.Integer),
    sa.Column("pgid", sa.Integer),
    sa.Column("heartbeat_at", sa.Double),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, default=False),
    sa.Column("cancel_reason", sa.Text),
    sa.Index(None, "experiment_id", "created_at"),
    sa.Index(None, "compute", "status", "created_at"),
    sa.Index(None, "status"),
    sa.Index(None, "parent_id"),
    sa.Index(None, "created_at"),
)

status_history = sa.Table(
    "status_history",
    metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "run_id", sa.String(32), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("time", sa.Double, nullable=False),
    sa.Column("reason", sa.Text),
    sa.Index(None, "run_id", "id"),
)

params = sa.Table(
    "params",
    metadata,
    sa.Column(
        "run_id", sa.String(32), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

tags = sa.Table(
    "tags",
    metadata,
    sa.Column(
        "run_id", sa.String(32), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

metrics = sa.Table(
    "metrics",
    metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "run_id", sa.String(32), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("key", sa.String(255), nullable=False),
    sa.Column("rank", sa.Integer, nullable=False),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("timestamp", sa.Double, nullable=False),
    sa.Column("value", sa.Double),
    sa.Index(None, "run_id", "key", "rank", "step", "timestamp"),
)

latest_metrics = sa.Table(
    "latest_metrics",
    metadata,
    sa.Column(
        "run_id", sa.String(32), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("rank", sa.Integer, primary_key=True),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("timestamp", sa.Double, nullable=False),
    sa.Column("value", sa.Double),
)

artifacts = sa.Table(
    "artifacts",
    metadata,
    sa.Column(
        "run_id", sa.String(32), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("path", sa.String(1024), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
)

#: Registered environments (:mod:`runyard.envs.registry`): one row per version of a name.
environments = sa.Table(
    "environments",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("definition", sa.JSON, nullable=False),
    sa.Column("digest", sa.CHAR(64), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
)

# -- models and endpoints (revision 0003) ----------------------------------------------------
# A model version's ``state`` is ``pending`` while its files are being copied, ``ready`` once
# they are all stored, ``deleted`` after deletion (the row stays so that version numbers are
# never reused). JSON columns hold string maps; ``run_metrics`` writes NaN and infinities as
# the strings "NaN", "Infinity", "-Infinity" (PostgreSQL's JSON has no such numbers).

models = sa.Table(
    "models",
    metadata,
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
    sa.Index(None, "run_id"),
)

model_aliases = sa.Table(
    "model_aliases",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("alias", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.ForeignKeyConstraint(["name", "version"], ["models.name", "models.version"]),
)

endpoints = sa.Table(
    "endpoints",
    metadata,
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
