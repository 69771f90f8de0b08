"""Endpoints: named deployments of model versions, served by detached processes.

``create`` records the endpoint (``Starting``) with its traffic split and serving options,
copies the scoring script (so later edits of the file do not change a running deployment),
starts ``python -m runyard.serving`` detached with its output in
``endpoints/<name>/server.log``, and waits until it answers (``Running``) or fails.
``set_traffic`` changes the split; the server loads the new versions and swaps them in
without stopping. ``delete`` stops the process (SIGTERM, then SIGKILL) and forgets the
endpoint. The API key is kept only as its SHA-256.
"""

from __future__ import annotations

import builtins
import os
import shutil
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from runyard.detach import start_detached
from runyard.errors import BackendError, EndpointNotFound, UserError
from runyard.naming import check_name, parse_model_ref
from runyard.records import Endpoint, EndpointStatus, TrafficRoute
from runyard.registry.endpoints import SERVER_MODULE, reap_endpoints, server_alive
from runyard.serving.process import endpoint_folder
from runyard.serving.server import ServeOptions, check_exposure
from runyard.workspace import Resources

__all__ = ["Endpoints", "parse_traffic"]

#: Starts ``"$@"`` in the background with its output appended to ``$0`` and prints its pid
#: (as the local backend starts supervisors: nothing ties the server to the caller).
LOG = "server.log"


def parse_traffic(pairs: Sequence[str]) -> dict[str, int]:
    """``["digits@3=90", "digits@4=10"]`` → ``{"digits@3": 90, "digits@4": 10}``; a ref
    without ``=WEIGHT`` gets 100."""
    out: dict[str, int] = {}
    for pair in pairs:
        ref, sep, weight = pair.partition("=")
        if not sep:
            weight = "100"
        if not weight.strip().isdigit():
            raise UserError(f"traffic {pair!r}: expected MODEL@VERSION=WEIGHT (a whole number)")
        out[ref] = int(weight)
    return out


class Endpoints:
    """The endpoints of one workspace."""

    def __init__(self, resources: Resources):
        self.resources = resources
        self.store = resources.store

    # -- reading -----------------------------------------------------------------------

    def list(self) -> builtins.list[Endpoint]:
        reap_endpoints(self.resources)
        endpoints: builtins.list[Endpoint] = self.store.list_endpoints()
        return endpoints

    def get(self, name: str) -> Endpoint:
        reap_endpoints(self.resources)
        endpoint: Endpoint = self.store.get_endpoint(name)
        return endpoint

    def log_path(self, name: str) -> Path:
        self.store.get_endpoint(name)
        return endpoint_folder(self.resources, name) / LOG

    # -- changing ----------------------------------------------------------------------

    def create(
        self,
        name: str,
        traffic: Mapping[str, int] | str,
        *,
        score: str | Path | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        workers: int = 1,
        key_sha256: str | None = None,
        max_batch_size: int = 1,
        max_delay_ms: float = 0.0,
        wait: float | None = 120.0,
    ) -> Endpoint:
        """Deploy ``traffic`` (``"digits@3"`` or ``{"digits@3": 90, "digits@4": 10}``) as
        endpoint ``name``; with ``wait``, return once it answers (or raise why it cannot)."""
        check_name(name, "endpoint")
        options = ServeOptions(
            host=host,
            port=port or 0,
            workers=workers,
            key_sha256=key_sha256,
            max_batch_size=max_batch_size,
            max_delay_ms=max_delay_ms,
        )
        check_exposure(options)
        routes = self._routes({traffic: 100} if isinstance(traffic, str) else traffic)
        folder = endpoint_folder(self.resources, name)
        if self._exists(name):
            raise UserError(f"endpoint {name!r} already exists (runyard endpoint delete {name})")
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        config = {
            "bind": host,
            "port": port,
            "workers": workers,
            "key_sha256": key_sha256,
            "max_batch_size": max_batch_size,
            "max_delay_ms": max_delay_ms,
            "score": None,
        }
        if score is not None:
            src = Path(score)
            if not src.is_file():
                raise UserError(f"scoring script {str(src)!r} does not exist")
            (folder / "score").mkdir()
            config["score"] = str(shutil.copy2(src, folder / "score" / src.name))
        self.store.create_endpoint(name, routes, config)
        try:
            pid = self._spawn(name, folder / LOG)
        except BackendError as e:
            self.store.update_endpoint(name, {"status": EndpointStatus.FAILED, "error": str(e)})
            raise
        import socket

        self.store.update_endpoint(name, {"pid": pid, "hostname": socket.gethostname()})
        if wait is None:
            return self.get(name)
        return self.wait_running(name, timeout=wait)

    def wait_running(self, name: str, *, timeout: float = 120.0) -> Endpoint:
        """Wait until the endpoint answers; raise with its log's tail if it failed."""
        deadline = time.monotonic() + timeout
        while True:
            endpoint = self.get(name)
            if endpoint.status is EndpointStatus.RUNNING:
                return endpoint
            if not endpoint.status.is_live:
                raise BackendError(
                    f"endpoint {name} {endpoint.status.value.lower()}: {endpoint.error}\n"
                    + self._log_tail(name)
                )
            if time.monotonic() > deadline:
                raise BackendError(
                    f"endpoint {name} did not answer within {timeout:g}s "
                    f"(see runyard endpoint logs {name})"
                )
            time.sleep(0.1)

    def set_traffic(
        self, name: str, traffic: Mapping[str, int], *, wait: float | None = 60.0
    ) -> Endpoint:
        """Change the split; with ``wait``, return once the server serves it."""
        routes = self._routes(traffic)
        endpoint: Endpoint = self.store.update_endpoint(name, {"traffic": routes})
        if wait is None or not endpoint.status.is_live:
            return endpoint
        wanted = [{"model": r.model, "version": r.version, "weight": r.weight} for r in routes]
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            endpoint = self.get(name)
            if endpoint.config.get("serving") == wanted:
                return endpoint
            if endpoint.error or not endpoint.status.is_live:
                raise BackendError(f"endpoint {name}: {endpoint.error or endpoint.status.value}")
            time.sleep(0.1)
        raise BackendError(f"endpoint {name} did not take the new traffic within {wait:g}s")

    def delete(self, name: str, *, grace: float = 10.0) -> None:
        """Stop the endpoint's server and forget the endpoint."""
        endpoint: Endpoint = self.store.get_endpoint(name)
        if endpoint.pid is not None and server_alive(endpoint):
            _stop(endpoint.pid, grace)
        self.store.delete_endpoint(name)
        shutil.rmtree(endpoint_folder(self.resources, name), ignore_errors=True)

    # -- helpers -----------------------------------------------------------------------

    def _exists(self, name: str) -> bool:
        try:
            self.store.get_endpoint(name)
        except EndpointNotFound:
            return False
        return True

    def _routes(self, traffic: Mapping[str, int]) -> builtins.list[TrafficRoute]:
        """Each ``NAME@VERSION`` or ``NAME@ALIAS`` resolved to a version, now."""
        from runyard.registry import ModelRegistry

        registry = ModelRegistry(self.resources)
        routes = []
        for ref, weight in traffic.items():
            parsed = parse_model_ref(ref)
            mv = registry.get(parsed)
            routes.append(TrafficRoute(mv.name, mv.version, weight))
        return routes

    def _spawn(self, name: str, log: Path) -> int:
        argv = [sys.executable, "-m", SERVER_MODULE, "--endpoint", name]
        argv += ["--workspace", str(self.resources.layout.root)]
        return start_detached(argv, log, what=f"a server for endpoint {name}")

    def _log_tail(self, name: str, lines: int = 20) -> str:
        path = endpoint_folder(self.resources, name) / LOG
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip().splitlines()[-lines:])


def _stop(pid: int, grace: float) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    import psutil

    try:
        proc = psutil.Process(pid)
        proc.wait(grace)
    except psutil.NoSuchProcess:
        return
    except psutil.TimeoutExpired:
        for child in proc.children(recursive=True):
            child.kill()
        proc.kill()
