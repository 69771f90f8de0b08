"""The ``Backend`` port: where runs execute (a compute target).

Contract (every implementation passes ``tests/backends/backend_contract.py``):

- A backend executes runs that the client has already recorded as Queued (with their spec
  and snapshot); it never creates runs. Everything after Queued — waiting for capacity,
  the status transitions, logs, metrics, artifacts, the final status — is recorded in the
  workspace's store by the run's supervisor, so ``status`` and ``logs`` are read from the
  store and the artifact store, not asked of the backend.
- :meth:`submit` returns at once (no waiting for capacity or for the run to start).
  Submitting a run that is not Queued, or was already submitted, raises
  :class:`~runyard.errors.InvalidTransition`: a run is executed once.
- :meth:`cancel` asks for the run to stop and returns at once: a Queued run is Canceled
  immediately; an active run's supervisor ends its processes (TERM, ``kill_grace``, KILL)
  within a few seconds and records Canceled with the reason. Canceling a terminal run
  raises :class:`~runyard.errors.InvalidTransition`.
- Capacity is per compute target: runs beyond it wait Queued, first come first served.

Backends are looked up by name with :func:`runyard.backends.get_backend`.
"""

from __future__ import annotations

from typing import Protocol

from runyard.records import Run


class Backend(Protocol):
    #: The compute target name runs use to choose this backend (``local``, ``ray``).
    name: str

    def submit(self, run_id: str) -> None:
        """Start executing the Queued run ``run_id``; return at once."""
        ...

    def cancel(self, run_id: str, reason: str = "canceled by user") -> Run:
        """Ask for the run to stop; return its record as it is now."""
        ...
