"""An endpoint's server follows its record: ``Running`` once it answers, and a new traffic
split (``runyard endpoint traffic``) loaded and swapped in while it keeps answering.

Each server process (each worker) looks at the record every :data:`POLL` seconds. A new
split is loaded off the event loop and swapped in whole; the versions it serves are then
written to the record's ``config["serving"]`` (what ``endpoint traffic`` waits for). A split
that cannot be loaded leaves the old one serving and says why in the record's ``error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from runyard.errors import EndpointNotFound, InvalidTransition
from runyard.records import Endpoint, EndpointStatus, TrafficRoute
from runyard.serving.state import load_state

if TYPE_CHECKING:
    from runyard.serving.app import ModelServer
    from runyard.serving.server import ServeOptions
    from runyard.workspace import Resources

__all__ = ["POLL", "EndpointWatcher", "serving_json"]

log = logging.getLogger("runyard.serving")
POLL = 0.5
_LIVE = [EndpointStatus.STARTING, EndpointStatus.RUNNING]


def serving_json(traffic: tuple[TrafficRoute, ...]) -> list[dict[str, Any]]:
    return [{"model": r.model, "version": r.version, "weight": r.weight} for r in traffic]


class EndpointWatcher:
    def __init__(self, server: ModelServer, options: ServeOptions):
        assert options.endpoint is not None and options.workspace is not None
        self.server = server
        self.options = options
        self.name = options.endpoint
        self._resources: Resources | None = None
        self._task: asyncio.Task[None] | None = None
        self._traffic: tuple[TrafficRoute, ...] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        endpoint = await loop.run_in_executor(None, self._started)
        self._traffic = endpoint.traffic
        self._task = loop.create_task(self._follow())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._resources is not None:
            self._resources.close()

    def _store(self) -> Any:
        if self._resources is None:
            from runyard.workspace import Resources

            assert self.options.workspace is not None
            self._resources = Resources.open(self.options.workspace)
        return self._resources.store

    def _started(self) -> Endpoint:
        store = self._store()
        current: Endpoint = store.get_endpoint(self.name)
        config = {**current.config, "serving": serving_json(current.traffic)}
        updated: Endpoint = store.update_endpoint(
            self.name,
            {"status": EndpointStatus.RUNNING, "error": None, "config": config},
            expected=_LIVE,
        )
        return updated

    async def _follow(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(POLL)
            try:
                endpoint = await loop.run_in_executor(None, self._store().get_endpoint, self.name)
            except EndpointNotFound:
                continue  # being deleted: the process is about to be stopped
            except Exception as e:
                log.warning("cannot read endpoint %s: %s", self.name, e)
                continue
            if endpoint.traffic == self._traffic:
                continue
            self._traffic = endpoint.traffic
            await self._apply(endpoint)

    async def _apply(self, endpoint: Endpoint) -> None:
        from runyard.serving.process import deployments_for

        loop = asyncio.get_running_loop()
        refs = ", ".join(f"{r.ref}={r.weight}" for r in endpoint.traffic)
        log.info("traffic changed: loading %s", refs)
        try:
            state = await loop.run_in_executor(None, self._load, endpoint, deployments_for)
        except Exception as e:
            log.exception("traffic change %s not applied", refs)
            await loop.run_in_executor(
                None, self._record, {"error": f"traffic change {refs} not applied: {e}"}
            )
            return
        await self.server.swap(state)
        config = {**endpoint.config, "serving": serving_json(endpoint.traffic)}
        await loop.run_in_executor(None, self._record, {"config": config, "error": None})

    def _load(self, endpoint: Endpoint, deployments_for: Any) -> Any:
        assert self._resources is not None
        deployments = deployments_for(self._resources, endpoint)
        return load_state(
            deployments,
            endpoint=self.name,
            batching=self.options.batching,
            metrics=self.server.metrics,
            reuse=self.server.state,
        )

    def _record(self, changes: dict[str, Any]) -> None:
        with contextlib.suppress(EndpointNotFound, InvalidTransition):
            self._store().update_endpoint(self.name, changes, expected=_LIVE)
