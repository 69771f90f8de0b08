"""runyard's exception tree.

Every error runyard raises on purpose derives from :class:`RunyardError`. Edges translate
them once: the CLI prints ``error: <message>`` and exits with ``exit_code``; the server
(later) maps them to HTTP statuses.

::

    RunyardError                      exit 1
    ├── UserError                     exit 2   the person asked for something wrong
    │   ├── SpecError                          a job spec field is wrong (file, field, problem)
    │   ├── SnapshotError                      the code folder cannot be snapshotted
    │   │   └── SnapshotTooLarge               over the file-count or size limit
    │   ├── InvalidMetric                      a logged value is not a number, a key is bad
    │   ├── ModelInUse                         a model version a live endpoint serves
    │   ├── ScoringScriptError                 a scoring script fails to import or init()
    │   └── NotFound                           no such run / experiment / artifact
    │       ├── RunNotFound
    │       ├── ModelNotFound                  no such model, version or alias
    │       └── EndpointNotFound
    ├── InvalidTransition                      a run is not in a status that allows the change
    ├── ExportError                            an exported model disagrees with the original
    ├── EnvironmentBuildError                  the installer failed (runyard.envs.errors)
    ├── StoreError                             the store failed (database, schema)
    └── BackendError                           a compute backend could not do what was asked
"""

from __future__ import annotations


class RunyardError(Exception):
    """Base of every error runyard raises on purpose."""

    exit_code = 1


class UserError(RunyardError):
    """The request is wrong; the message tells the person what to change."""

    exit_code = 2


class SpecError(UserError):
    """A job spec is invalid. ``source`` is the file (or ``<cli>``/``<python>``), ``field``
    the dotted path of the offending field."""

    def __init__(self, problem: str, *, source: str | None = None, field: str | None = None):
        self.problem = problem
        self.source = source
        self.field = field
        where = ": ".join(p for p in (source, field) if p)
        super().__init__(f"{where}: {problem}" if where else problem)


class SnapshotError(UserError):
    """The code folder cannot be snapshotted."""


class SnapshotTooLarge(SnapshotError):
    """The code folder exceeds the snapshot limits; the message lists the largest files."""


class InvalidMetric(UserError, ValueError):
    """A metric value is not a real number, or a key is not a valid name."""


class NotFound(UserError):
    """Something named by the person does not exist."""


class RunNotFound(NotFound):
    def __init__(self, run_id: str):
        self.run_id = run_id
        super().__init__(f"run {run_id!r} not found")


class ModelNotFound(NotFound):
    """No model of that name, or no such version or alias of it."""


class EndpointNotFound(NotFound):
    def __init__(self, name: str):
        self.name = name
        super().__init__(f"endpoint {name!r} not found")


class ModelInUse(UserError):
    """A model version cannot be deleted while a live endpoint serves it."""


class ScoringScriptError(UserError):
    """A scoring script raised while being imported or in its ``init()``; the original
    exception is the cause."""


class ExportError(RunyardError):
    """A model could not be exported, or the export does not reproduce the original."""


class InvalidTransition(RunyardError):
    """A run's status does not allow the requested change (e.g. cancel a finished run)."""

    exit_code = 2


class StoreError(RunyardError):
    """The store could not complete an operation."""


class BackendError(RunyardError):
    """A compute backend could not do what was asked."""
