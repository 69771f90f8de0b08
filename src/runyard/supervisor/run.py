"""The supervisor: runs one recorded run on this machine, from Queued to its end.

Steps, each recorded as a status change with its time::

    Queued      wait for a slot (store.claim), reaping lost runs meanwhile
    Preparing   lay out the working folder from the snapshot; materialize the environment
                (cache hit, or a build with uv that a cancel request stops) and hold it
    Starting    spawn the command in its own process group, output to logs/std_log.txt;
                a distributed run's processes all at once (supervisor.gang), a log each.
                It lasts as long as the spawn, so it is written together with Running
                (with its own time in the history), one write fewer per run
    Running     ingest events, beat the heart, sync logs/, watch for cancel and timeout
    Finalizing  ingest the rest, store outputs/ and logs/ as artifacts, then register the
                models the run asked for (runyard.register_model) if it succeeded. Written
                when it begins if it may take a while (processes left to stop, over
                QUICK_FINALIZE_BYTES to store, models, a remote artifact store), else
                together with the outcome, with its own time
    Completed | Failed (exit code or signal, error tail) | Canceled (reason)

A cancel request (or :meth:`Supervisor.interrupt`) is honoured between the steps before the
command starts, and while it runs by ending the whole process tree: SIGTERM, then SIGKILL
after ``kill_grace`` seconds. Whatever goes wrong inside the supervisor, the run is left
terminal (Failed, ``supervisor error: ...``) with its processes ended.

A run can also be asked to stop itself: its stop file (``RUNYARD_STOP_FILE``, which
``runyard.should_stop()`` looks for) holds the reason. A sweep's early termination writes it,
then requests the cancel. When the stop file exists, the command first gets ``kill_grace``
seconds to exit on its own, then SIGTERM and another ``kill_grace`` before SIGKILL; a command
that exits after the stop file appeared ends Canceled with that reason, whatever its exit code.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import socket
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from runyard.artifacts import LocalArtifactStore
from runyard.errors import BackendError, InvalidTransition, RunyardError, SpecError, UserError
from runyard.launch import plan_local
from runyard.records import ArtifactInfo, Run, RunState, RunStatus
from runyard.spec import JobSpec, command_argv
from runyard.supervisor.background import Periodic
from runyard.supervisor.diag import DiagHandler, Diagnostics
from runyard.supervisor.gang import Gang
from runyard.supervisor.ingest import Ingestor
from runyard.supervisor.logsync import FolderSync, tail_text
from runyard.supervisor.models import register_requested
from runyard.supervisor.process import is_alive
from runyard.supervisor.ranklogs import MergedTail
from runyard.supervisor.reaper import reap_lost, supervisor_alive
from runyard.supervisor.sysmetrics import SamplingJob
from runyard.supervisor.workdir import WorkDir, child_env, prepare_workdir
from runyard.workspace import Resources

if TYPE_CHECKING:
    from runyard.envs import Environment

#: Seconds between claim attempts while Queued (plus up to 25% jitter); the first retries
#: come sooner (from CLAIM_FIRST, doubling), as an older run submitted at the same moment
#: usually claims its slot within milliseconds.
CLAIM_POLL, CLAIM_FIRST = 0.2, 0.005
#: Main-loop tick while running: 0.1 s when echoing a terminal, else 0.25 s.
TICK_ECHO, TICK = 0.1, 0.25
#: Seconds between looks at the store for a cancel request, and between syncs of logs/.
CANCEL_POLL, LOG_SYNC = 0.5, 1.0
#: Finalizing is written up front when the files to store exceed this many bytes.
QUICK_FINALIZE_BYTES = 8 << 20
#: Lines of output kept as a failed run's ``error``.
ERROR_TAIL_LINES = 30
#: Seconds after the start of the first system-metrics sample (later ones: the interval).
FIRST_SAMPLE = 1.0
SAMPLER_JOB = "system metrics"

ENV_WATCH = "environment cancel watch"


def _stop_file_reason(path: Path) -> str | None:
    """The reason written in the run's stop file, or None when there is no stop file."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except FileNotFoundError:
        return None
    except OSError:
        text = ""
    return text.splitlines()[0][:500] if text else "asked to stop (stop file)"


class _RunEnded(Exception):
    """The run became terminal behind the supervisor's back (e.g. a reaper failed it)."""

    def __init__(self, run: Run):
        super().__init__(run.id)
        self.run = run


class _NotOurs(Exception):
    """Another supervisor claimed the run (the same run submitted twice at once)."""


def _check_startable(run: Run) -> None:
    if run.status is not RunStatus.QUEUED:
        raise BackendError(f"run {run.id} is {run.status}; only a Queued run can be started")
    pid = run.supervisor_pid
    if (
        pid is not None
        and pid != os.getpid()
        and run.host == socket.gethostname()
        and supervisor_alive(run)
    ):
        raise BackendError(f"run {run.id} already has a supervisor (pid {pid})")


@dataclass
class _Stop:
    """A stop under way: SIGTERM sent (or due at ``term_at``), SIGKILL due at ``kill_at``."""

    reason: str
    kill_at: float
    killed: bool = False
    #: A soft stop (the stop file asked the command to exit): SIGTERM is not sent before.
    term_at: float | None = None


@dataclass
class _Live:
    """What follows a running command: events, logs/, and the terminal echo."""

    ingest: Ingestor
    logs: FolderSync
    tail: MergedTail | None


class Supervisor:
    """Executes run ``run_id`` (recorded Queued, with its spec and snapshot) in this process.

    ``echo`` receives each line the run prints, as it prints it (foreground mode);
    ``on_status`` receives the run record after every status change it writes (Starting is
    written together with Running, so the record then is Running), and the Queued record
    once if the run has to wait for a slot. ``slot_freed``, when given, is set by whoever
    learns that a run on this machine ended (a :class:`~runyard.supervisor.pool.SupervisorPool`
    worker's pool): a run waiting for a slot then tries again at once rather than at its
    next poll. ``record``, when given, is the run's record as its submitter has just
    created it, which is then not read again (the claim still finds out whether it is
    Queued)."""

    def __init__(
        self,
        resources: Resources,
        run_id: str,
        *,
        echo: Callable[[str], None] | None = None,
        on_status: Callable[[Run], None] | None = None,
        slot_freed: threading.Event | None = None,
        record: Run | None = None,
    ):
        if record is not None and record.id != run_id:
            raise ValueError(f"the record given is run {record.id}'s, not run {run_id}'s")
        self.resources = resources
        self.store = resources.store
        self.settings = resources.settings
        self.run_id = run_id
        self._given = record
        self.echo = echo
        self.on_status = on_status
        #: Set when a run on this machine ended (by a pool: see the class's docs).
        self.slot_freed = slot_freed if slot_freed is not None else threading.Event()
        self._interrupted: str | None = None
        self._force = False
        self._procs: Gang | None = None
        self._periodic: Periodic | None = None
        self._sampling: SamplingJob | None = None
        self._diag: Diagnostics | None = None
        #: Environments held for the run (closed when it ends); set to stop a build.
        self._holds = contextlib.ExitStack()
        self._build_cancel = threading.Event()
        #: Lines shown on the terminal before the log tail started, which it then skips.
        self._shown: deque[str] = deque()

    # -- public ------------------------------------------------------------------------
    def interrupt(self, reason: str = "canceled by user (interrupt)") -> None:
        """Cancel the run from a signal handler or another thread. A second call skips the
        grace period and kills at once."""
        if self._interrupted is None:
            self._interrupted = reason
        else:
            self._force = True

    def execute(self) -> Run:
        """Run it to the end and return the final record.

        Returns at once, with the record as it is, when the run is already terminal (e.g.
        canceled while Queued). Raises :class:`~runyard.errors.BackendError`, changing
        nothing, for a run that is active or has a live supervisor elsewhere."""
        result = self._supervise()
        return result if isinstance(result, Run) else self.store.get_run(self.run_id)

    def supervise(self) -> RunState:
        """As :meth:`execute`, returning the final lifecycle fields only (what a detached
        supervisor reports): one read of the whole record fewer."""
        result = self._supervise()
        return result.state if isinstance(result, Run) else result

    def _supervise(self) -> Run | RunState:
        run = self._given if self._given is not None else self.store.get_run(self.run_id)
        self.run_id = run.id
        if run.status.is_terminal:
            return run
        _check_startable(run)
        self._diag = diag = Diagnostics(self.resources.layout.supervisor_log(run.id))
        self._periodic = Periodic(self._warn)
        handler = DiagHandler(diag, str(self.resources.layout.events_path(run.id)))
        events_log = logging.getLogger("runyard.tracking")
        events_log.addHandler(handler)
        diag.write(f"supervisor starts for run {run.id} ({run.status})")
        try:
            return self._execute(run)
        except _RunEnded as e:
            self._warn(f"run was ended elsewhere: {e.run.status} ({e.run.reason})")
            self._end_processes(self.settings.kill_grace)
            return e.run
        except _NotOurs as e:
            self._warn(str(e))
            return self.store.run_state(self.run_id)
        except KeyboardInterrupt:
            self._abort(RunStatus.CANCELED, "canceled by user (interrupt)", None)
            raise
        except BaseException as e:
            tb = traceback.format_exc()
            diag.write(f"supervisor error:\n{tb}")
            error = "\n".join(tb.rstrip().splitlines()[-ERROR_TAIL_LINES:])
            if not self._abort(
                RunStatus.FAILED, f"supervisor error: {type(e).__name__}: {e}", error
            ):
                raise
            if not isinstance(e, Exception):
                raise
            return self.store.run_state(self.run_id)
        finally:
            self._periodic.stop()
            if self._sampling is not None:
                self._sampling.close()
            events_log.removeHandler(handler)
            self._holds.close()
            diag.write("supervisor exits")
            diag.close()

    # -- the steps -----------------------------------------------------------------------
    def _execute(self, run: Run) -> RunState:
        spec = JobSpec.from_dict(run.spec)
        assert self._periodic is not None
        beat = self.settings.heartbeat_interval
        self._periodic.add("heartbeat", beat, self._heartbeat, first=beat)
        if not self._wait_for_slot(run):
            return self.store.run_state(self.run_id)
        self._entered(RunStatus.PREPARING, None)  # what the claim recorded
        try:
            wd = prepare_workdir(self.resources.layout, run, spec)
        except RunyardError as e:  # e.g. a damaged snapshot
            return self._end_unstarted(RunStatus.FAILED, f"preparing failed: {e}")
        environment = self._environment(spec, wd)
        if isinstance(environment, RunState):
            return environment  # it could not be prepared, or a cancel came meanwhile
        if (ended := self._stop_if_asked()) is not None:
            return ended
        # Starting lasts as long as spawning the processes: it is recorded, with its own
        # time, together with the status that follows (Running, or Failed).
        starting = [(RunStatus.STARTING, time.time())]
        env = child_env(run, spec, wd, environment)
        try:
            argv = command_argv(spec, outputs_dir=str(wd.outputs))
            if environment is not None and environment.image is not None:
                from runyard.supervisor.environment import in_image

                argv = in_image(environment, argv, wd, env)
            plan = plan_local(spec, argv, environ=env)  # one process, or the gang of ranks
        except SpecError as e:
            return self._end_unstarted(RunStatus.FAILED, f"invalid job: {e}", via=starting)
        try:
            procs = Gang.start(plan, self.run_id, cwd=wd.root, env=env, logs=wd.logs)
        except OSError as e:
            if plan.kind == "single":  # a gang notes it in its std_log.txt itself
                with open(wd.std_log, "a", encoding="utf-8") as f:  # noqa: PTH123
                    f.write(f"[runyard] cannot start {argv[0]!r}: {e}\n")
            why = f"cannot start the command: {e}"
            return self._end_unstarted(RunStatus.FAILED, why, via=starting)
        self._procs = procs
        self._diag_write(f"started {procs.describe()}: {argv}")
        # Its own process group (start_new_session), recorded with the status.
        self._move(RunStatus.RUNNING, via=starting, pgid=procs.pid)
        self._start_sampler(procs.pids)
        live = _Live(
            ingest=Ingestor(
                self.store,
                self.run_id,
                wd.events,
                FolderSync(self.resources.artifacts, self.run_id, wd.outputs, "outputs"),
                self._warn,
            ),
            logs=FolderSync(self.resources.artifacts, self.run_id, wd.logs, "logs"),
            tail=procs.tail(self._echo) if self.echo is not None else None,
        )
        stop = self._watch(procs, spec, live, wd.stop_file)
        return self._finalize(procs, stop, live, wd)

    def _wait_for_slot(self, run: Run) -> bool:
        """Claim a slot, recording this supervisor with the claim (or, if it has to wait,
        before it waits); False if the run ended (canceled, failed) while waiting."""
        me = (socket.gethostname(), os.getpid())
        slots = self.settings.local_slots
        reap_every = max(1.0, self.settings.heartbeat_interval)
        # Not at once: a run queued behind another that is about to end (a sweep's next
        # trial) usually gets its slot within milliseconds, and reaping reads every active run.
        next_reap = time.monotonic() + CLAIM_POLL
        announced = False
        # Quick retries first even when woken on every run's end: a claim also fails while
        # an older Queued run, about to be claimed, heads the queue.
        pause = CLAIM_FIRST
        while not self.store.claim(self.run_id, slots=slots, supervisor=me):
            current = self.store.run_state(self.run_id)
            if current.status is not RunStatus.QUEUED:
                if current.status.is_terminal:
                    self._diag_write(f"ended while queued: {current.status} ({current.reason})")
                    return False
                raise _NotOurs(f"run {run.id} was claimed by another supervisor; leaving it")
            if (current.host, current.supervisor_pid) != me:  # unless its submitter did
                self.store.attach_supervisor(self.run_id, host=me[0], pid=me[1])
            if self._interrupted is not None:
                with contextlib.suppress(InvalidTransition):
                    self.store.request_cancel(self.run_id, self._interrupted)
                continue
            if not announced:
                announced = True
                self._diag_write(f"waiting for a slot ({slots} on this machine)")
                if self.on_status is not None:
                    self.on_status(self.store.get_run(self.run_id))
            if time.monotonic() >= next_reap:
                next_reap = time.monotonic() + reap_every
                try:
                    if lost := reap_lost(self.resources):
                        self._diag_write(f"reaped lost runs: {', '.join(lost)}")
                except Exception as e:  # reaping is a courtesy; never fail this run over it
                    self._warn(f"reaping failed: {type(e).__name__}: {e}")
            if self.slot_freed.wait(pause * (1 + random.uniform(0, 0.25))):
                self.slot_freed.clear()  # a run ended: try again now
                self._diag_write("a run on this machine ended: claiming again")
                pause = CLAIM_FIRST
            else:
                pause = min(2 * pause, CLAIM_POLL)
        return True

    def _watch(self, procs: Gang, spec: JobSpec, live: _Live, stop_file: Path) -> _Stop | None:
        """Until the command exits: ingest, sync logs, echo, and stop it when asked."""
        tick = TICK_ECHO if live.tail is not None else TICK
        timeout = spec.limits.timeout
        deadline = time.monotonic() + timeout if timeout else None
        next_cancel_poll = next_sync = 0.0
        stop: _Stop | None = None
        exited = procs.watch()
        try:
            while not exited.wait(tick):
                live.ingest.poll()
                if live.tail is not None:
                    live.tail.poll()
                now = time.monotonic()
                if now >= next_sync:
                    next_sync = now + LOG_SYNC
                    self._record(live.logs.sync())
                if stop is None:
                    reason = self._interrupted
                    soft = False
                    if reason is None and now >= next_cancel_poll:
                        next_cancel_poll = now + CANCEL_POLL
                        reason = self._cancel_reason()
                        asked = _stop_file_reason(stop_file)
                        soft = asked is not None
                        reason = reason or asked
                    if reason is None and deadline is not None and now >= deadline:
                        reason = f"timeout after {timeout:g}s"
                    if reason is not None:
                        stop = self._begin_stop(procs, reason, soft=soft)
                elif stop.term_at is not None and (self._force or now >= stop.term_at):
                    self._diag_write("the command did not stop itself: SIGTERM")
                    procs.send(signal.SIGTERM)
                    stop.term_at = None
                    stop.kill_at = now + (0.0 if self._force else self.settings.kill_grace)
                elif not stop.killed and (self._force or now >= stop.kill_at):
                    self._diag_write("grace period over: SIGKILL")
                    procs.send(signal.SIGKILL)
                    stop.killed = True
        finally:
            exited.close()
        return stop

    def _finalize(
        self,
        procs: Gang,
        stop: _Stop | None,
        live: _Live,
        wd: WorkDir,
    ) -> RunState:
        assert self._periodic is not None
        self._periodic.remove(SAMPLER_JOB)
        # Finalizing is written as this step begins when it may take a while (processes to
        # stop, many bytes to store, models to register, a remote artifact store), else
        # together with the outcome, with its own time: one write fewer per run.
        finalizing: list[tuple[RunStatus, float]] | None = [(RunStatus.FINALIZING, time.time())]
        # The leader is a zombie until reaped, so its process group id cannot have been
        # reused: end whatever is left of the tree, then collect the exit status.
        left = procs.tree() if stop is None else None
        local = isinstance(self.resources.artifacts, LocalArtifactStore)
        if left is None or any(is_alive(p) for p in left) or not local:
            self._move(RunStatus.FINALIZING)
            finalizing = None
        if stop is None:
            grace = self.settings.kill_grace
        else:
            grace = 0.0 if stop.killed else max(0.0, stop.kill_at - time.monotonic())
        self._end_processes(grace, left)
        outcome = procs.finish()  # every exit status (a gang's in logs/ranks.json)
        live.ingest.poll(max_reads=None)
        if finalizing is not None and (
            live.ingest.models
            or live.logs.pending() + live.ingest.outputs.pending() > QUICK_FINALIZE_BYTES
        ):
            self._move(RunStatus.FINALIZING)
            finalizing = None
        stored = live.logs.sync(force=True) + live.ingest.outputs.sync(force=True)
        if finalizing is None:
            self._record(stored)
            stored = []  # else indexed with the outcome
        if live.tail is not None:
            live.tail.drain()
        exit_code, reason = outcome.exit_code, outcome.reason
        self._diag_write(f"command ended: {reason}; {live.ingest.points} points ingested")
        error = None
        if stop is None and (asked := _stop_file_reason(wd.stop_file)) is not None:
            stop = _Stop(reason=asked, kill_at=0.0)  # it stopped itself when asked to
        if stop is not None:
            status, why = RunStatus.CANCELED, stop.reason
        elif outcome.returncode == 0:
            status, why = RunStatus.COMPLETED, None
        else:
            status, why = RunStatus.FAILED, reason  # a gang's names the failing rank
            error = tail_text(outcome.log, lines=ERROR_TAIL_LINES)
        if status is RunStatus.COMPLETED and live.ingest.models:  # runyard.register_model
            failed = register_requested(
                self.resources, self.run_id, live.ingest.models, wd.std_log, self._echo
            )
            self._record(live.logs.sync(force=True))
            if failed is not None:
                status, why, error = RunStatus.FAILED, failed, failed
        self._periodic.stop()  # no heartbeat after the last status
        return self._move(
            status, reason=why, exit_code=exit_code, error=error, via=finalizing, artifacts=stored
        )

    # -- stopping --------------------------------------------------------------------------
    def _cancel_reason(self) -> str | None:
        state = self.store.run_state(self.run_id)
        if state.status.is_terminal:
            raise _RunEnded(self.store.get_run(self.run_id))
        if state.cancel_requested:
            return state.cancel_reason or "canceled by user"
        return None

    def _stop_if_asked(self) -> RunState | None:
        """Between the steps before the command starts: cancel the run if asked to."""
        reason = self._interrupted or self._cancel_reason()
        if reason is None:
            return None
        return self._end_unstarted(RunStatus.CANCELED, reason)

    def _end_unstarted(
        self,
        status: RunStatus,
        reason: str,
        error: str | None = None,
        *,
        via: list[tuple[RunStatus, float]] | None = None,
    ) -> RunState:
        self._diag_write(f"ending before the command started: {status} ({reason})")
        if self._periodic is not None:
            self._periodic.stop()
        return self._move(status, reason=reason, error=error, via=via)

    def _begin_stop(self, procs: Gang, reason: str, *, soft: bool = False) -> _Stop:
        grace = 0.0 if self._force else self.settings.kill_grace
        now = time.monotonic()
        if soft and grace > 0:
            self._diag_write(
                f"stopping the run ({reason}): stop file written; SIGTERM after {grace:g}s, "
                f"SIGKILL {grace:g}s later"
            )
            return _Stop(reason=reason, kill_at=now + 2 * grace, term_at=now + grace)
        self._diag_write(f"stopping the run ({reason}): SIGTERM, SIGKILL after {grace:g}s")
        procs.send(signal.SIGTERM)
        return _Stop(reason=reason, kill_at=now + grace)

    def _end_processes(self, grace: float, found: list[psutil.Process] | None = None) -> None:
        """End what is left of the run's processes (``found``, if just looked up), if any
        were started."""
        if self._procs is not None and (killed := self._procs.end(grace, found)):
            self._diag_write(f"killed {len(killed)} process(es) left after the grace period")

    def _abort(self, status: RunStatus, reason: str, error: str | None) -> bool:
        """Leave the run terminal after a supervisor error; False if the store failed too."""
        try:
            self._end_processes(min(self.settings.kill_grace, 2.0))
        except Exception:
            self._diag_write(f"could not end the processes:\n{traceback.format_exc()}")
        try:
            if not self.store.run_state(self.run_id).status.is_terminal:
                self.store.transition(self.run_id, status, reason=reason, error=error)
        except InvalidTransition:
            pass
        except Exception:
            self._diag_write(f"could not record the failure:\n{traceback.format_exc()}")
            return False
        return True

    # -- helpers -----------------------------------------------------------------------------
    def _move(
        self,
        status: RunStatus,
        *,
        reason: str | None = None,
        exit_code: int | None = None,
        error: str | None = None,
        via: list[tuple[RunStatus, float]] | None = None,
        pgid: int | None = None,
        artifacts: list[ArtifactInfo] | None = None,
    ) -> RunState:
        """Record ``status`` (after the statuses ``via``, with their times; ``artifacts``
        indexed with it); if the run was ended elsewhere meanwhile, raise _RunEnded."""
        try:
            state = self.store.transition(
                self.run_id,
                status,
                reason=reason,
                exit_code=exit_code,
                error=error,
                via=via or (),
                pgid=pgid,
                artifacts=artifacts or (),
            )
        except InvalidTransition:
            self._record(artifacts or [])  # stored all the same
            current = self.store.get_run(self.run_id)
            if current.status.is_terminal:
                raise _RunEnded(current) from None
            raise
        for passed, _ in via or ():
            self._diag_write(f"status {passed}")
        self._entered(state.status, state.reason)
        return state

    def _entered(self, status: RunStatus, reason: str | None) -> None:
        self._diag_write(f"status {status}" + (f" ({reason})" if reason else ""))
        if self.on_status is not None:
            self.on_status(self.store.get_run(self.run_id))

    def _heartbeat(self) -> None:
        self.store.heartbeat(self.run_id)

    def _record(self, infos: list[ArtifactInfo]) -> None:
        if infos:
            self.store.record_artifacts(self.run_id, infos)

    def _start_sampler(self, pids: list[int]) -> None:
        every = self.settings.system_metrics_interval
        if every > 0 and self._periodic is not None:
            job = SamplingJob(self.store, self.run_id, pids, first_after=min(FIRST_SAMPLE, every))
            self._sampling = job
            self._periodic.add(SAMPLER_JOB, every, job, first=0.0)

    def _environment(self, spec: JobSpec, wd: WorkDir) -> Environment | RunState | None:
        """Preparing: the run's environment, materialized and held (None: runyard's own
        interpreter as is). While it builds, a cancel request or :meth:`interrupt` stops the
        build. Returns the ended run's state when it could not be prepared or was canceled."""
        if spec.environment.is_ambient:
            return None
        from runyard.envs import EnvironmentBuildError
        from runyard.supervisor.environment import failure, prepare_environment

        assert self._periodic is not None
        self._periodic.add(ENV_WATCH, CANCEL_POLL, self._watch_build, first=CANCEL_POLL)
        try:
            return prepare_environment(
                self.resources,
                self.run_id,
                spec,
                wd,
                note=lambda text: self._note(wd, text),
                holds=self._holds,
                cancel=self._build_cancel,
            )
        except (UserError, EnvironmentBuildError) as e:
            if (reason := self._interrupted or self._cancel_reason()) is not None:
                return self._end_unstarted(RunStatus.CANCELED, reason)
            why, error = failure(e)  # uv's own words are the error
            return self._end_unstarted(RunStatus.FAILED, why, error=error)
        finally:
            self._periodic.remove(ENV_WATCH)

    def _watch_build(self) -> None:
        """While the environment builds (on the periodic thread): stop the build when the
        run is asked to stop."""
        if self._interrupted is None:
            state = self.store.run_state(self.run_id)
            if not (state.cancel_requested or state.status.is_terminal):
                return
        self._build_cancel.set()

    def _note(self, wd: WorkDir, text: str) -> None:
        """A line from runyard for the person, before the command starts: appended to
        ``logs/std_log.txt`` and, in the foreground, shown at once (the log tail that starts
        with the command then skips it)."""
        line = f"[runyard] {text}"
        with open(wd.std_log, "a", encoding="utf-8") as f:  # noqa: PTH123
            f.write(line + "\n")
        if not text.startswith(" "):  # a state, not one of uv's lines
            self._diag_write(text)
        if self.echo is not None:
            self._echo(line, fresh=True)

    def _echo(self, line: str, *, fresh: bool = False) -> None:
        """Pass a line to ``echo``; a failing terminal must not end the run, so echoing
        stops after the first error. A ``fresh`` line is shown ahead of the log tail; when
        the tail reaches it, it is not shown again."""
        if self.echo is None:
            return
        if fresh:
            self._shown.append(line)
        elif self._shown:
            if line == self._shown[0]:
                self._shown.popleft()
                return
            self._shown.clear()
        try:
            self.echo(line)
        except Exception as e:
            self.echo = None
            self._warn(f"echo failed, no more output is echoed: {type(e).__name__}: {e}")

    def _warn(self, message: str) -> None:
        self._diag_write(f"warning: {message}")

    def _diag_write(self, message: str) -> None:
        if self._diag is not None:
            self._diag.write(message)
