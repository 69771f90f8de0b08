"""Traffic split: which served version answers the next request.

Smooth weighted round-robin (the algorithm nginx uses for weighted upstreams): each pick adds
every route's weight to its running credit, takes the route with the most credit and takes
the total weight off it. It is deterministic and exact — of every ``sum(weights)``
consecutive picks, each route gets exactly its weight — and spreads a small route's picks
evenly instead of in a burst. Routes of weight 0 are never picked (they are still served
when a request names their version).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Generic, TypeVar

__all__ = ["WeightedRouter"]

T = TypeVar("T")


class WeightedRouter(Generic[T]):
    def __init__(self, routes: Sequence[tuple[T, int]]):
        self._routes = [(item, weight) for item, weight in routes if weight > 0]
        if not self._routes:
            raise ValueError("a traffic split needs a route with a weight above 0")
        self._total = sum(w for _, w in self._routes)
        self._credit = [0] * len(self._routes)
        self._lock = threading.Lock()

    def pick(self) -> T:
        if len(self._routes) == 1:
            return self._routes[0][0]
        with self._lock:
            best = 0
            for i, (_, weight) in enumerate(self._routes):
                self._credit[i] += weight
                if self._credit[i] > self._credit[best]:
                    best = i
            self._credit[best] -= self._total
            return self._routes[best][0]
