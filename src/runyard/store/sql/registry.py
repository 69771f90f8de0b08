"""The SQL store's model and endpoint methods (see :class:`~runyard.store.base.Store`).

A mixin of :class:`~runyard.store.sql.store.SqlStore`: each method is one transaction from
the store's ``_read`` or ``_write``; the queries live in :mod:`.models` and :mod:`.endpoints`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

import sqlalchemy as sa

from runyard.records import Endpoint, EndpointStatus, ModelFile, ModelVersion, TrafficRoute
from runyard.store.sql import endpoints, models


class RegistryMethods:
    _read: Callable[[], AbstractContextManager[sa.Connection]]
    _write: Callable[[], AbstractContextManager[sa.Connection]]

    # -- models -----------------------------------------------------------------------------

    def create_model_version(
        self,
        name: str,
        *,
        framework: str | None = None,
        framework_version: str | None = None,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        properties: Mapping[str, str] | None = None,
        run_id: str | None = None,
        run_params: Mapping[str, str] | None = None,
        run_metrics: Mapping[str, float] | None = None,
        source: str | None = None,
    ) -> ModelVersion:
        with self._write() as conn:
            return models.create_model_version(
                conn,
                name,
                framework=framework,
                framework_version=framework_version,
                description=description,
                tags=tags,
                properties=properties,
                run_id=run_id,
                run_params=run_params,
                run_metrics=run_metrics,
                source=source,
            )

    def finish_model_version(
        self, name: str, version: int, files: Sequence[ModelFile]
    ) -> ModelVersion:
        with self._write() as conn:
            return models.finish_model_version(conn, name, version, files)

    def get_model_version(
        self, name: str, version: int | None = None, *, alias: str | None = None
    ) -> ModelVersion:
        with self._read() as conn:
            return models.get_model_version(conn, name, version, alias)

    def list_model_versions(self, name: str | None = None) -> list[ModelVersion]:
        with self._read() as conn:
            return models.list_model_versions(conn, name)

    def update_model_version(
        self,
        name: str,
        version: int,
        *,
        set_tags: Mapping[str, str] | None = None,
        delete_tags: Iterable[str] = (),
        description: str | None = None,
    ) -> ModelVersion:
        with self._write() as conn:
            return models.update_model_version(
                conn,
                name,
                version,
                set_tags=set_tags,
                delete_tags=delete_tags,
                description=description,
            )

    def set_model_alias(self, name: str, alias: str, version: int | None) -> None:
        with self._write() as conn:
            models.set_alias(conn, name, alias, version)

    def delete_model_version(self, name: str, version: int) -> ModelVersion:
        with self._write() as conn:
            return models.delete_model_version(conn, name, version)

    # -- endpoints --------------------------------------------------------------------------

    def create_endpoint(
        self, name: str, traffic: Sequence[TrafficRoute], config: Mapping[str, Any]
    ) -> Endpoint:
        with self._write() as conn:
            return endpoints.create_endpoint(conn, name, traffic, config)

    def get_endpoint(self, name: str) -> Endpoint:
        with self._read() as conn:
            return endpoints.get_endpoint(conn, name)

    def list_endpoints(self) -> list[Endpoint]:
        with self._read() as conn:
            return endpoints.list_endpoints(conn)

    def update_endpoint(
        self,
        name: str,
        changes: Mapping[str, Any],
        *,
        expected: Iterable[EndpointStatus] | None = None,
    ) -> Endpoint:
        with self._write() as conn:
            return endpoints.update_endpoint(conn, name, changes, expected)

    def delete_endpoint(self, name: str) -> None:
        with self._write() as conn:
            endpoints.delete_endpoint(conn, name)
