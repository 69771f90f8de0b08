"""Endpoint records and the liveness of their servers.

An endpoint's server is a detached process on one machine (``hostname``, ``pid``). When it
dies without saying so (killed, a crash, a reboot), its record still reads ``Starting`` or
``Running``; :func:`reap_endpoints` marks such endpoints ``Failed`` so that they no longer
count as serving their versions (which may then be deleted).
"""

from __future__ import annotations

import socket

import psutil

from runyard.errors import InvalidTransition
from runyard.records import Endpoint, EndpointStatus
from runyard.workspace import Resources

__all__ = ["SERVER_MODULE", "reap_endpoints", "server_alive"]

#: The module a detached endpoint server runs as (``python -m runyard.serving ...``).
SERVER_MODULE = "runyard.serving"
_LIVE = [EndpointStatus.STARTING, EndpointStatus.RUNNING]


def server_alive(endpoint: Endpoint) -> bool:
    """Whether the endpoint's recorded process is alive and is its server. An endpoint on
    another machine is taken to be alive (this machine cannot tell)."""
    if endpoint.hostname is not None and endpoint.hostname != socket.gethostname():
        return True
    if endpoint.pid is None:
        return False
    try:
        proc = psutil.Process(endpoint.pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        cmdline = proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return SERVER_MODULE in cmdline and endpoint.name in cmdline


def reap_endpoints(resources: Resources) -> list[str]:
    """Mark live endpoints of this machine whose server is gone as Failed; their names."""
    reaped = []
    for ep in resources.store.list_endpoints():
        if not ep.status.is_live or ep.pid is None or server_alive(ep):
            continue
        try:
            resources.store.update_endpoint(
                ep.name,
                {"status": EndpointStatus.FAILED, "error": f"server process {ep.pid} exited"},
                expected=_LIVE,
            )
            reaped.append(ep.name)
        except InvalidTransition:
            pass
    return reaped
