"""Model versions and their aliases: rows to :class:`~runyard.records.ModelVersion`.

Every function takes a connection inside a transaction the caller (``SqlStore``) opened.
Changes that number versions or decide whether a version is served take the
``runyard.models`` lock first (SQLite's write lock already serializes them; PostgreSQL takes
an advisory lock), so two registrations never get the same version and a version is never
deleted while an endpoint is being pointed at it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from runyard.errors import ModelInUse, ModelNotFound, UserError
from runyard.naming import check_alias, check_name
from runyard.records import ModelFile, ModelVersion
from runyard.store.sql import dialects
from runyard.store.sql.schema import endpoints, model_aliases, models

LOCK = "runyard.models"
PENDING, READY, DELETED = "pending", "ready", "deleted"
#: Endpoint statuses under which an endpoint's versions count as served.
LIVE_ENDPOINTS = ("Starting", "Running")

_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def strings(what: str, mapping: Mapping[str, Any] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (mapping or {}).items():
        if not isinstance(key, str) or not key:
            raise UserError(f"{what} keys must be non-empty strings, got {key!r}")
        out[key] = value if isinstance(value, str) else str(value)
    return out


def _encode_metrics(metrics: Mapping[str, float] | None) -> dict[str, float | str]:
    out: dict[str, float | str] = {}
    for key, value in (metrics or {}).items():
        v = float(value)
        if math.isnan(v):
            out[key] = "NaN"
        elif math.isinf(v):
            out[key] = "Infinity" if v > 0 else "-Infinity"
        else:
            out[key] = v
    return out


def _decode_metrics(data: Mapping[str, Any]) -> dict[str, float]:
    return {k: _NON_FINITE[v] if isinstance(v, str) else float(v) for k, v in data.items()}


# -- creating ------------------------------------------------------------------------------


def create_model_version(
    conn: sa.Connection,
    name: str,
    *,
    framework: str | None,
    framework_version: str | None,
    description: str | None,
    tags: Mapping[str, str] | None,
    properties: Mapping[str, str] | None,
    run_id: str | None,
    run_params: Mapping[str, str] | None,
    run_metrics: Mapping[str, float] | None,
    source: str | None,
) -> ModelVersion:
    check_name(name)
    row: dict[str, Any] = {
        "name": name,
        "state": PENDING,
        "created_at": time.time(),
        "framework": framework,
        "framework_version": framework_version,
        "description": description,
        "files": [],
        "tags": strings("tag", tags),
        "properties": strings("property", properties),
        "run_id": run_id,
        "run_params": strings("param", run_params),
        "run_metrics": _encode_metrics(run_metrics),
        "source": source,
    }
    dialects.lock(conn, LOCK)
    last = conn.scalar(sa.select(sa.func.max(models.c.version)).where(models.c.name == name))
    version = int(last or 0) + 1
    conn.execute(sa.insert(models).values(**row, version=version))
    return _record(_row(conn, name, version, PENDING), ())


def finish_model_version(
    conn: sa.Connection, name: str, version: int, files: Sequence[ModelFile]
) -> ModelVersion:
    _row(conn, name, version, PENDING)
    if not files:
        raise UserError(f"model {name}@{version}: a model version needs at least one file")
    listed = [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in files]
    conn.execute(
        sa.update(models)
        .where(models.c.name == name, models.c.version == version)
        .values(state=READY, files=sorted(listed, key=lambda f: f["path"]))
    )
    return _record(_row(conn, name, version, READY), ())


# -- reading ---------------------------------------------------------------------------------


def get_model_version(
    conn: sa.Connection, name: str, version: int | None, alias: str | None
) -> ModelVersion:
    check_name(name)
    if version is not None and alias is not None:
        raise UserError("give a version or an alias, not both")
    if alias is not None:
        found = conn.scalar(
            sa.select(model_aliases.c.version).where(
                model_aliases.c.name == name, model_aliases.c.alias == alias
            )
        )
        if found is None:
            raise ModelNotFound(f"model {name!r} has no alias {alias!r}{_known(conn, name)}")
        version = int(found)
    elif version is None:
        newest = conn.scalar(
            sa.select(sa.func.max(models.c.version)).where(
                models.c.name == name, models.c.state == READY
            )
        )
        if newest is None:
            raise ModelNotFound(f"model {name!r} not found")
        version = int(newest)
    row = _row(conn, name, version, READY)
    return _record(row, _aliases(conn, [(name, version)]).get((name, version), ()))


def list_model_versions(conn: sa.Connection, name: str | None) -> list[ModelVersion]:
    stmt = sa.select(models).where(models.c.state == READY)
    if name is not None:
        stmt = stmt.where(models.c.name == check_name(name))
    rows = conn.execute(stmt.order_by(models.c.name, models.c.version.desc())).all()
    aliases = _aliases(conn, [(r.name, r.version) for r in rows])
    return [_record(r, aliases.get((r.name, r.version), ())) for r in rows]


def _row(conn: sa.Connection, name: str, version: int, state: str) -> sa.Row[Any]:
    """The row of ``name@version`` if it is in ``state``; else the error saying why not."""
    row = conn.execute(
        sa.select(models).where(models.c.name == name, models.c.version == version)
    ).first()
    if row is None or row.state != state:
        raise _unavailable(conn, name, version, row)
    return row


def _unavailable(
    conn: sa.Connection, name: str, version: int, row: sa.Row[Any] | None
) -> UserError:
    if row is not None and row.state == PENDING:
        return ModelNotFound(f"model {name}@{version} is still being registered")
    if row is not None and row.state == DELETED:
        return ModelNotFound(f"model {name}@{version} was deleted")
    if row is not None:
        return UserError(f"model {name}@{version} is already registered")
    exists = conn.scalar(sa.select(models.c.name).where(models.c.name == name).limit(1))
    return ModelNotFound(
        f"model {name!r} has no version {version}" if exists else f"model {name!r} not found"
    )


def _known(conn: sa.Connection, name: str) -> str:
    names = conn.scalars(
        sa.select(model_aliases.c.alias)
        .where(model_aliases.c.name == name)
        .order_by(model_aliases.c.alias)
    ).all()
    return f" (its aliases: {', '.join(names)})" if names else ""


def _aliases(
    conn: sa.Connection, keys: Sequence[tuple[str, int]]
) -> dict[tuple[str, int], tuple[str, ...]]:
    names = sorted({name for name, _ in keys})
    if not names:
        return {}
    out: dict[tuple[str, int], list[str]] = {}
    rows = conn.execute(
        sa.select(model_aliases.c.name, model_aliases.c.version, model_aliases.c.alias)
        .where(model_aliases.c.name.in_(names))
        .order_by(model_aliases.c.alias)
    )
    for name, version, alias in rows:
        out.setdefault((name, version), []).append(alias)
    return {k: tuple(v) for k, v in out.items()}


def _record(row: sa.Row[Any], aliases: Iterable[str]) -> ModelVersion:
    return ModelVersion(
        name=row.name,
        version=row.version,
        created_at=row.created_at,
        framework=row.framework,
        framework_version=row.framework_version,
        description=row.description,
        files=tuple(ModelFile(f["path"], int(f["size"]), f["sha256"]) for f in row.files),
        tags=dict(row.tags),
        properties=dict(row.properties),
        aliases=tuple(aliases),
        run_id=row.run_id,
        run_params=dict(row.run_params),
        run_metrics=_decode_metrics(row.run_metrics),
        source=row.source,
    )


# -- changing --------------------------------------------------------------------------------


def update_model_version(
    conn: sa.Connection,
    name: str,
    version: int,
    *,
    set_tags: Mapping[str, str] | None,
    delete_tags: Iterable[str],
    description: str | None,
) -> ModelVersion:
    check_name(name)
    row = _row(conn, name, version, READY)
    tags = {**row.tags, **strings("tag", set_tags)}
    for key in delete_tags:
        tags.pop(key, None)
    values: dict[str, Any] = {"tags": tags}
    if description is not None:
        values["description"] = description
    conn.execute(
        sa.update(models).where(models.c.name == name, models.c.version == version).values(values)
    )
    return get_model_version(conn, name, version, None)


def set_alias(conn: sa.Connection, name: str, alias: str, version: int | None) -> None:
    check_name(name)
    check_alias(alias)
    where = (model_aliases.c.name == name, model_aliases.c.alias == alias)
    if version is None:
        found = conn.execute(sa.delete(model_aliases).where(*where)).rowcount
        if not found:
            raise ModelNotFound(f"model {name!r} has no alias {alias!r}{_known(conn, name)}")
        return
    _row(conn, name, version, READY)
    row = {"name": name, "alias": alias, "version": version}
    dialects.upsert(conn, model_aliases, [row], update=["version"])


def delete_model_version(conn: sa.Connection, name: str, version: int) -> ModelVersion:
    check_name(name)
    dialects.lock(conn, LOCK)
    row = conn.execute(
        sa.select(models).where(models.c.name == name, models.c.version == version)
    ).first()
    if row is None or row.state == DELETED:
        raise _unavailable(conn, name, version, row)
    served = serving_endpoints(conn, name, version)
    if served:
        raise ModelInUse(
            f"model {name}@{version} is served by endpoint {', '.join(served)}; move its "
            "traffic elsewhere (runyard endpoint traffic) or delete the endpoint first"
        )
    aliases = _aliases(conn, [(name, version)]).get((name, version), ())
    conn.execute(
        sa.delete(model_aliases).where(
            model_aliases.c.name == name, model_aliases.c.version == version
        )
    )
    conn.execute(
        sa.update(models)
        .where(models.c.name == name, models.c.version == version)
        .values(state=DELETED)
    )
    return _record(row, aliases)


def serving_endpoints(conn: sa.Connection, name: str, version: int) -> list[str]:
    """Names of live endpoints whose traffic includes ``name@version``."""
    rows = conn.execute(
        sa.select(endpoints.c.name, endpoints.c.traffic)
        .where(endpoints.c.status.in_(LIVE_ENDPOINTS))
        .order_by(endpoints.c.name)
    )
    return [
        ep
        for ep, traffic in rows
        if any(r["model"] == name and r["version"] == version for r in traffic)
    ]
