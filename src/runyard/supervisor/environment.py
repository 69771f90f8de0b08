"""Preparing a run's environment (the supervisor's Preparing step, for a job whose
``environment:`` is more than variables).

- A reference (``digits-env``, ``digits-env@3``) is looked up in the store; the version used
  is recorded.
- :func:`runyard.envs.materialize` finds the environment in the workspace's cache or builds
  it once (other runs needing it meanwhile wait for that build). Relative files resolve
  against the run's working folder, the immutable copy of its code snapshot.
- It is held (:func:`runyard.envs.hold`) until the run ends, so ``env prune`` never removes it.
- What happens is told as it happens: status lines and uv's output go to
  ``logs/environment.txt`` (with uv's command lines) and, as ``[runyard]`` lines, to
  ``logs/std_log.txt`` (what ``runyard logs`` and a foreground ``runyard run`` show).
- The run is tagged ``runyard.environment.hash`` (a built one), ``.python`` (its version),
  ``.ref`` (a registered one) and ``.image``; the exact packages are stored as
  ``logs/environment.lock.txt`` (what ``runyard env export RUN`` prints).

Failures are raised for the supervisor to end the run with: a definition that cannot be
built here (:class:`~runyard.errors.UserError`, e.g. no interpreter fits, an unknown
reference) or a build uv rejected (:class:`~runyard.envs.EnvironmentBuildError`, with uv's
own words); by then they are in the logs too, and nothing of the build is left in the cache.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import IO, TYPE_CHECKING

from runyard.errors import SpecError, UserError
from runyard.records import ArtifactInfo
from runyard.spec import JobSpec
from runyard.supervisor.logsync import FolderSync
from runyard.supervisor.workdir import WorkDir
from runyard.workspace import Resources

if TYPE_CHECKING:
    from runyard.envs import Environment, EnvironmentDefinition

#: In the run's ``logs/``: the build's whole log, and the exact packages.
ENV_LOG = "environment.txt"
LOCK_FILE = "environment.lock.txt"
TAG_HASH = "runyard.environment.hash"
TAG_PYTHON = "runyard.environment.python"
TAG_REF = "runyard.environment.ref"
TAG_IMAGE = "runyard.environment.image"

Note = Callable[[str], None]


def prepare_environment(
    resources: Resources,
    run_id: str,
    spec: JobSpec,
    wd: WorkDir,
    *,
    note: Note,
    holds: contextlib.ExitStack,
    cancel: threading.Event,
) -> Environment:
    """Materialize the run's environment, hold it in ``holds``, record it; return it.

    ``note`` shows a line to the person (the supervisor writes it to ``logs/std_log.txt``
    and, in the foreground, to the terminal). Setting ``cancel`` stops a build or a wait for
    one (:class:`~runyard.envs.EnvironmentBuildError` ``... canceled``)."""
    from runyard.envs import EnvironmentBuildError

    with (wd.logs / ENV_LOG).open("a", encoding="utf-8", buffering=1) as log_file:
        try:
            return _materialize(resources, run_id, spec, wd, log_file, note, holds, cancel)
        except (UserError, EnvironmentBuildError) as e:
            log_file.write(f"[runyard] {e}\n")
            note(failure(e)[0])  # (uv's own words were shown as they came)
            _store_logs(resources, run_id, wd)  # the run ends here: keep what it has
            raise


def failure(e: Exception) -> tuple[str, str | None]:
    """(reason, error) of a run whose environment could not be prepared: one line, and uv's
    own words when uv failed."""
    from runyard.envs import EnvironmentBuildError

    if isinstance(e, EnvironmentBuildError):
        return f"environment: {e.message.rstrip(':')}", e.output or None
    text = str(e)
    return (text if text.startswith("environment") else f"environment: {text}"), None


def _materialize(
    resources: Resources,
    run_id: str,
    spec: JobSpec,
    wd: WorkDir,
    log_file: IO[str],
    note: Note,
    holds: contextlib.ExitStack,
    cancel: threading.Event,
) -> Environment:
    from runyard.envs import EnvironmentBuildError, hold, lookup, materialize

    wanted = spec.environment
    tags: dict[str, str] = {}
    definition: EnvironmentDefinition | None = None
    if wanted.ref is not None:
        record, definition = lookup(resources.store, wanted.ref)
        tags[TAG_REF] = record.ref
        log_file.write(f"[runyard] environment {wanted.ref}: {record.ref}\n")
        note(f"environment {record.ref}")
    if spec.distribution is not None and (definition or wanted).image is not None:
        raise SpecError(
            "distributed runs in a container image are not supported yet", field="environment"
        )

    def status(line: str) -> None:
        log_file.write(f"[runyard] {line}\n")
        note(line)

    installing = False

    def log(line: str) -> None:
        # Everything goes to environment.txt; the person is shown what the installer says
        # about the packages (not its command lines, nor its words about the new venv).
        nonlocal installing
        log_file.write(line + "\n")
        if line.startswith("$ "):
            installing = line.startswith("$ uv pip install ")
        elif installing and not line.startswith("Using Python "):
            note(f"  {line}")

    for attempt in (1, 2):
        env = materialize(
            definition or wanted,
            envs_root=resources.layout.envs,
            base_dir=wd.root,
            log=log,
            status=status,
            cancel=cancel,
        )
        try:
            holds.enter_context(hold(env))
            break
        except EnvironmentBuildError:  # pruned between materializing and holding it
            if attempt == 2:
                raise
    if env.cached:
        status(_describe(env))
    if env.hash is not None:
        tags[TAG_HASH] = env.hash
    if env.python_version is not None:
        tags[TAG_PYTHON] = env.python_version
    if env.image is not None:
        tags[TAG_IMAGE] = env.image
    resources.store.set_tags(run_id, tags)
    if env.image is None:
        (wd.logs / LOCK_FILE).write_text("".join(f"{p}\n" for p in env.lock), encoding="utf-8")
    return env


def _describe(env: Environment) -> str:
    if env.image is not None:
        runtime = env.container_runtime.name if env.container_runtime else "a container runtime"
        return f"environment: image {env.image} under {runtime}"
    if env.hash is None:
        return f"environment: runyard's own interpreter (Python {env.python_version})"
    count = len(env.lock)
    packages = f"{count} package" + ("" if count == 1 else "s")
    return f"environment {env.short_hash} from the cache (Python {env.python_version}, {packages})"


def _store_logs(resources: Resources, run_id: str, wd: WorkDir) -> None:
    """Copy what there is of ``logs/`` now, so a run that ends here keeps its build log (a
    run that goes on stores its logs as it runs)."""
    infos: list[ArtifactInfo] = FolderSync(resources.artifacts, run_id, wd.logs, "logs").sync(
        force=True
    )
    if infos:
        resources.store.record_artifacts(run_id, infos)


def in_image(
    env: Environment, argv: Sequence[str], wd: WorkDir, variables: Mapping[str, str]
) -> list[str]:
    """``argv`` run in ``env``'s image: the run's folder (working folder, events file, stop
    file) mounted at the same path, and the variables that the run adds to the supervisor's
    own environment (the spec's, runyard's contract) passed in."""
    from runyard.envs import container_command

    assert env.image is not None and env.container_runtime is not None
    added = {k: v for k, v in variables.items() if os.environ.get(k) != v}
    added.setdefault("PYTHONUNBUFFERED", "1")
    return container_command(
        env.container_runtime,
        env.image,
        argv,
        workdir=wd.root,
        variables=added,
        mounts=(wd.events.parent,),
    )
