"""Choosing free ports: the one impure step before planning."""

from __future__ import annotations

import socket
from contextlib import ExitStack


def allocate_ports(n: int, host: str = "") -> tuple[int, ...]:
    """``n`` distinct TCP ports that are free on ``host`` of this machine right now.

    Each is found by binding a socket to port 0, all at once so that the kernel hands out
    distinct ones; every socket is closed before returning, so none is held. The default
    ``host`` (all addresses) is where torch's store and TensorFlow's servers listen. Another
    process could still take a port before the gang binds it: start the gang promptly. Ports
    of another machine must be chosen on that machine."""
    if n < 0:
        raise ValueError(f"cannot allocate {n} ports")
    if host:
        family, _, _, _, address = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)[0]
    else:
        family, address = socket.AF_INET, ("", 0)
    with ExitStack() as stack:
        sockets = []
        for _ in range(n):
            sock = stack.enter_context(socket.socket(family, socket.SOCK_STREAM))
            sock.bind(address)
            sockets.append(sock)
        return tuple(int(s.getsockname()[1]) for s in sockets)
