"""Running a model server: options, the exposure rule, sockets, uvicorn and its workers.

:func:`serve` loads the deployments once in the calling process (so a model that cannot be
loaded fails before anything listens), binds the socket, and answers until SIGINT or
SIGTERM. With ``workers > 1`` uvicorn starts that many processes on the same socket, each
loading the models itself from the options passed in :data:`CONFIG_VARIABLE`.

A server bound beyond loopback must have an API key: :func:`check_exposure` refuses to
start one without.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import socket
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from runyard.errors import UserError
from runyard.serving.app import ModelServer, create_app
from runyard.serving.metrics import ServerMetrics
from runyard.serving.state import Deployment, load_state

__all__ = [
    "CONFIG_VARIABLE",
    "RunningServer",
    "ServeOptions",
    "bind",
    "check_exposure",
    "serve",
    "serve_in_thread",
]

log = logging.getLogger("runyard.serving")

#: How a worker process gets its deployments and options (JSON), with ``workers > 1``.
CONFIG_VARIABLE = "RUNYARD_SERVE_CONFIG"


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    #: SHA-256 of the API key (see :func:`runyard.serving.app.key_digest`); None: no key.
    key_sha256: str | None = None
    #: Dynamic batching of no-code models: at most this many rows per call (1: off), after
    #: waiting at most ``max_delay_ms`` for more requests (0: no waiting; a batch is what
    #: queued while the model computed the last one).
    max_batch_size: int = 1
    max_delay_ms: float = 0.0
    #: Serving an endpoint: its name, and the workspace folder it is recorded in (the server
    #: marks it Running and follows its traffic changes).
    endpoint: str | None = None
    workspace: str | None = None
    log_level: str = "info"

    @property
    def batching(self) -> tuple[int, float] | None:
        if self.max_batch_size <= 1:
            return None
        return self.max_batch_size, self.max_delay_ms / 1000.0


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(options: ServeOptions) -> None:
    """Refuse a server reachable from other machines without an API key."""
    if options.key_sha256 is None and not is_loopback(options.host):
        raise UserError(
            f"refusing to serve on {options.host} without an API key: anyone who can reach "
            "this machine could use the model. Give --auth KEY, or bind to 127.0.0.1"
        )
    if options.workers < 1:
        raise UserError(f"--workers must be at least 1, got {options.workers}")
    if options.max_batch_size < 1:
        raise UserError(f"--max-batch-size must be at least 1, got {options.max_batch_size}")
    if options.max_delay_ms < 0:
        raise UserError(f"--max-delay-ms must be 0 or more, got {options.max_delay_ms}")


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (0: any free port)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise UserError(f"cannot bind to {host!r}: {e}") from None
    family, kind, proto, _, address = infos[0]
    # The protocol number matters: asyncio sets TCP_NODELAY only on sockets that say TCP,
    # and without it every answer waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(family, kind, proto or socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(
    deployments: Sequence[Deployment],
    options: ServeOptions,
    *,
    sock: socket.socket | None = None,
    on_listening: Callable[[int], None] | None = None,
) -> None:
    """Serve ``deployments`` until interrupted. ``on_listening(port)`` is called once the
    models are loaded and the socket accepts connections."""
    check_exposure(options)
    _log_to_stderr(options.log_level)
    metrics = ServerMetrics()
    state = load_state(
        deployments, endpoint=options.endpoint, batching=options.batching, metrics=metrics
    )
    sock = sock or bind(options.host, options.port)
    port = int(sock.getsockname()[1])
    import uvicorn

    common: dict[str, Any] = {
        "log_level": options.log_level,
        "access_log": False,
        "timeout_graceful_shutdown": 5,
        "lifespan": "on",
        "ws": "none",
    }
    if options.workers == 1:
        server = ModelServer(state, metrics=metrics, key_sha256=options.key_sha256)
        app = create_app(server, lifespan=_lifespan(server, options, on_listening, port))
        uvicorn.Server(uvicorn.Config(app, **common)).run(sockets=[sock])
        return
    from uvicorn.supervisors import Multiprocess

    del state  # it only proved the models load: each worker loads its own
    os.environ[CONFIG_VARIABLE] = json.dumps(
        {"deployments": [d.to_json() for d in deployments], "options": asdict(options)}
    )
    config = uvicorn.Config(
        f"{__name__}:app_from_environment",
        factory=True,
        workers=options.workers,
        timeout_worker_healthcheck=120,
        **common,
    )
    if on_listening is not None:
        on_listening(port)  # the socket queues connections while the workers start
    Multiprocess(config, sockets=[sock]).run()


class RunningServer:
    """A server answering from a thread of this process (see :func:`serve_in_thread`)."""

    def __init__(self, server: ModelServer, uvicorn_server: Any, port: int, host: str):
        self.server = server
        self.port = port
        bracketed = f"[{host}]" if ":" in host else host
        self.url = f"http://{bracketed}:{port}"
        self._uvicorn = uvicorn_server

    @property
    def metrics(self) -> ServerMetrics:
        return self.server.metrics


@contextlib.contextmanager
def serve_in_thread(
    deployments: Sequence[Deployment], options: ServeOptions | None = None
) -> Iterator[RunningServer]:
    """Serve from a background thread of this process (notebooks, tests, benchmarks) until
    the ``with`` block ends. ``options.port`` 0 (the default here) takes a free port;
    ``workers`` must be 1."""
    import threading

    import uvicorn

    options = options or ServeOptions(port=0)
    check_exposure(options)
    if options.workers != 1:
        raise UserError("a server in a thread has one worker; use serve() for more")
    metrics = ServerMetrics()
    state = load_state(
        deployments, endpoint=options.endpoint, batching=options.batching, metrics=metrics
    )
    sock = bind(options.host, options.port)
    server = ModelServer(state, metrics=metrics, key_sha256=options.key_sha256)
    port = int(sock.getsockname()[1])
    app = create_app(server, lifespan=_lifespan(server, options, None, port))
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", ws="none")
    userver = uvicorn.Server(config)
    thread = threading.Thread(
        target=userver.run, kwargs={"sockets": [sock]}, name="runyard-serve", daemon=True
    )
    thread.start()
    try:
        while not userver.started:
            if not thread.is_alive():
                raise UserError("the model server stopped while starting (see the log)")
            thread.join(0.01)
        yield RunningServer(server, userver, port, options.host)
    finally:
        userver.should_exit = True
        thread.join(10)
        sock.close()


def app_from_environment() -> Any:
    """A worker's app (``workers > 1``): the deployments and options from the parent."""
    data = json.loads(os.environ[CONFIG_VARIABLE])
    options = ServeOptions(**data["options"])
    _log_to_stderr(options.log_level)
    deployments = [Deployment.from_json(d) for d in data["deployments"]]
    metrics = ServerMetrics()
    state = load_state(
        deployments, endpoint=options.endpoint, batching=options.batching, metrics=metrics
    )
    server = ModelServer(state, metrics=metrics, key_sha256=options.key_sha256)
    return create_app(server, lifespan=_lifespan(server, options, None, options.port))


def _lifespan(
    server: ModelServer,
    options: ServeOptions,
    on_listening: Callable[[int], None] | None,
    port: int,
) -> Any:
    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        watcher = None
        if options.endpoint is not None and options.workspace is not None:
            from runyard.serving.watch import EndpointWatcher

            watcher = EndpointWatcher(server, options)
            await watcher.start()
        if on_listening is not None:
            on_listening(port)
        log.info("serving %s on port %d", ", ".join(server.state.served), port)
        try:
            yield
        finally:
            if watcher is not None:
                await watcher.stop()
            await server.state.close()

    return lifespan


def _log_to_stderr(level: str) -> None:
    logger = logging.getLogger("runyard")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(level.upper())
