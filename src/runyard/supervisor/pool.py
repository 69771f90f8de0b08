"""Supervising many runs fast: a pool of supervisor processes, for a process that submits
run after run (a sweep's controller).

A detached ``python -m runyard.supervisor`` costs a fresh interpreter, runyard's imports and
a cold store (every SQL statement compiled anew), about half a second, for every run. A
:class:`SupervisorPool` pays that once per worker. It starts one helper process that has the
supervisor imported and waits; :meth:`SupervisorPool.start` hands it a Queued run, which it
gives to an idle worker, forking a new one when none is idle. The helper is forked from the
caller when that is safe (one thread, under :data:`FORK_MAX_RSS` resident, the supervisor
imported: then it starts in milliseconds), with every database connection closed first, as
SQLite connections must not cross a ``fork()``; otherwise it is a fresh interpreter,
``python -m runyard.supervisor.pool --workspace ROOT``, which takes about 0.3 s to import.

A worker is a process of its own, in its own session, that supervises one run at a time
exactly as ``python -m runyard.supervisor`` does (its output appended to that run's
``supervisor.log``), then waits for the next. When a run is
over the helper says so, and :class:`SupervisorPool` passes it to ``on_end``: the caller
learns at once that a run ended.

Nothing depends on the pool's caller: if the caller dies, the helper sees its stdin close
and closes the workers' queues; each worker finishes the run it supervises, if any, then
exits. A worker whose supervisor could not leave its run terminal exits instead of taking
another, so that the run is found lost by its dead pid as with a detached supervisor.

When a run ends, the helper also tells the other busy workers: one whose run waits for a
slot claims it at once instead of at its next poll (a caller may submit more runs than there
are slots, and each then starts the moment a slot frees).

A pool may be given a ``limit``: at most that many runs supervised at once. A run started
beyond it waits in the helper (``start`` returns None) and goes to the first worker whose run
ends, with no round trip through the caller; ``on_start`` learns its worker then. Runs still
waiting when the caller goes away are dropped: they stay Queued, as recorded.

The helper speaks in lines: a request ``RUN_ID`` on its stdin, or ``RUN_ID<TAB>RECORD``
when the caller has the run's record (its fields as JSON: the worker need not read it from
the store); on its stdout ``started<TAB>RUN_ID<TAB>PID``, ``queued<TAB>RUN_ID`` or
``error<TAB>RUN_ID<TAB>MESSAGE``, and later ``ended<TAB>RUN_ID<TAB>PID`` and, for a run that
waited, ``assigned<TAB>RUN_ID<TAB>PID``. It writes requests or ``wake`` lines to a worker.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import io
import json
import logging
import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runyard.errors import BackendError

if TYPE_CHECKING:
    from runyard.records import Run
    from runyard.supervisor.run import Supervisor
    from runyard.workspace import Resources

#: Seconds to wait for the helper's answer to a request (the first includes its start).
ANSWER_TIMEOUT = 60.0
#: Idle workers kept for the next runs; more are told to exit.
KEEP_IDLE = 4
#: What the helper writes to a busy worker when another worker's run ended.
WAKE = b"wake\n"
#: Above this resident size the caller is not forked (every worker would share its pages).
FORK_MAX_RSS = 1 << 30


class SupervisorPool:
    """Starts supervisors for runs of the workspace at ``root`` (see the module's docs),
    at most ``limit`` at once when given.

    ``on_end(run_id)`` is called from a reader thread when a run's supervisor is done with
    it, ``on_start(run_id, pid)`` when a run that had to wait is handed to a worker. Use as a
    context manager, or call :meth:`close`."""

    def __init__(
        self,
        root: Path,
        *,
        on_end: Callable[[str], None] | None = None,
        on_start: Callable[[str, int], None] | None = None,
        limit: int | None = None,
    ):
        if limit is not None and limit < 1:
            raise ValueError(f"a pool's limit must be at least 1, not {limit}")
        self.root = root
        self.on_end = on_end
        self.on_start = on_start
        self.limit = limit
        #: Requests the helper keeps waiting (answered "queued", not yet "assigned"), by run.
        self._waiting: dict[str, str] = {}
        self._proc: subprocess.Popen[bytes] | _ForkedHelper | None = None
        self._answers: queue.Queue[tuple[str, str, str]] = queue.Queue()
        self._reader: threading.Thread | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> SupervisorPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, run_id: str, root: Path | None = None, record: Run | None = None) -> int | None:
        """Have a worker supervise ``run_id`` (Queued); the worker's pid, or None when the
        run waits for one (``limit`` reached). ``record``: the run's record as the caller has
        just created it, handed to the worker.

        Raises :class:`~runyard.errors.BackendError` when the pool cannot start it."""
        if root is not None and Path(root) != self.root:
            raise BackendError(f"run {run_id} is not in {self.root}")
        if not run_id.isalnum():
            raise BackendError(f"cannot start a supervisor for run {run_id!r}: not a run id")
        request = run_id if record is None else f"{run_id}\t{_encode(record)}"
        with self._lock:
            proc = self._helper()
            self._waiting[run_id] = request  # before the answer: "assigned" may follow at once
            try:
                kind, rid, detail = self._ask(proc, run_id, request)
            except BackendError:
                self._waiting.pop(run_id, None)
                raise
            if kind != "queued" or rid != run_id:
                self._waiting.pop(run_id, None)
        if kind not in ("started", "queued") or rid != run_id:
            raise BackendError(f"could not start a supervisor for run {run_id}: {detail}")
        return int(detail) if kind == "started" else None

    def revive(self) -> None:
        """If the helper exited (killed, crashed) while runs waited in it, start a new one and
        hand it those runs (``on_start`` learns their workers). Cheap when nothing waits."""
        with self._lock:
            if self._waiting and (self._proc is None or self._proc.poll() is not None):
                self._helper()

    def close(self) -> None:
        """Stop the helper; workers finish the run they supervise, then exit. Runs still
        waiting stay Queued."""
        with self._lock:
            self._stop_helper()
            self._waiting.clear()

    def _ask(
        self, proc: subprocess.Popen[bytes] | _ForkedHelper, run_id: str, request: str
    ) -> tuple[str, str, str]:
        """Send ``request`` to the helper; its answer."""
        assert proc.stdin is not None
        try:
            proc.stdin.write(f"{request}\n".encode())
            proc.stdin.flush()
            answer = self._answers.get(timeout=ANSWER_TIMEOUT)
        except (OSError, queue.Empty) as e:
            self._stop_helper()
            raise BackendError(
                f"could not start a supervisor for run {run_id}: the supervisor pool "
                f"did not answer ({type(e).__name__}: {e})"
            ) from e
        if answer[0] == "gone":
            self._stop_helper()
        return answer

    # -- the helper ------------------------------------------------------------------------
    def _helper(self) -> subprocess.Popen[bytes] | _ForkedHelper:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self._stop_helper()
        argv = [sys.executable, "-m", "runyard.supervisor.pool", "--workspace", str(self.root)]
        if self.limit is not None:
            argv += ["--limit", str(self.limit)]
        try:
            if _can_fork():
                self._proc = _ForkedHelper(self.root, self.limit)
            else:
                self._proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    start_new_session=True,  # no terminal signal reaches it or its workers
                )
        except OSError as e:
            raise BackendError(f"could not start the supervisor pool: {e}") from e
        self._reader = threading.Thread(
            target=self._read, args=(self._proc,), name="runyard supervisor pool", daemon=True
        )
        self._reader.start()
        proc = self._proc
        for run_id, request in list(self._waiting.items()):  # what the last helper held
            kind, rid, detail = self._ask(proc, run_id, request)
            if kind != "queued" or rid != run_id:
                del self._waiting[run_id]  # an error leaves it Queued
                if kind == "started" and rid == run_id and self.on_start is not None:
                    self.on_start(run_id, int(detail))
        return proc

    def _read(self, proc: subprocess.Popen[bytes] | _ForkedHelper) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            kind, _, rest = raw.decode("utf-8", "replace").rstrip("\n").partition("\t")
            first, _, second = rest.partition("\t")
            if kind == "ended":
                if self.on_end is not None:
                    self.on_end(first)
            elif kind == "assigned":
                self._waiting.pop(first, None)
                if self.on_start is not None:
                    self.on_start(first, int(second))
            else:
                self._answers.put((kind, first, second))
        self._answers.put(("gone", "", "the supervisor pool exited"))

    def _stop_helper(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(timeout=10)  # it exits when its stdin closes
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=10)
            self._reader = None
        if proc.stdout is not None:
            proc.stdout.close()
        while not self._answers.empty():  # a reply nobody waits for any more
            self._answers.get_nowait()


def _encode(record: Run) -> str:
    return json.dumps(dataclasses.asdict(record), separators=(",", ":"))  # one line


def _decode(request: str) -> tuple[str, Run | None]:
    """A request's run id, and the run's record if it came with one."""
    from runyard.records import Run, RunStatus

    run_id, _, record = request.partition("\t")
    if not record:
        return run_id, None
    fields = json.loads(record)
    return run_id, Run(**{**fields, "status": RunStatus(fields["status"])})


def _can_fork() -> bool:
    """Whether this process may fork the helper: one thread (a fork copies no other thread,
    and any lock one held stays held), not too big, the supervisor already imported."""
    if "runyard.supervisor.run" not in sys.modules or "runyard.store.sql" not in sys.modules:
        return False
    try:
        with open("/proc/self/status", encoding="ascii") as f:  # noqa: PTH123
            status = dict(line.split(":", 1) for line in f if ":" in line)
        threads = int(status["Threads"])
        rss = int(status["VmRSS"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return False  # not Linux: start a fresh interpreter
    return threads == 1 and rss <= FORK_MAX_RSS


class _ForkedHelper:
    """The helper forked from this process, with what the pool uses of
    :class:`subprocess.Popen`."""

    def __init__(self, root: Path, limit: int | None):
        from runyard.store.sql.engine import close_connections

        requests_r, requests_w = os.pipe()
        answers_r, answers_w = os.pipe()
        close_connections()  # no database connection crosses the fork
        for stream in (sys.stdout, sys.stderr):  # nor output buffered here
            with contextlib.suppress(Exception):
                stream.flush()
        pid = os.fork()
        if pid == 0:
            _forked_helper(str(root), limit, requests_r, answers_w)  # does not return
        os.close(requests_r)
        os.close(answers_w)
        self.pid = pid
        self.stdin = os.fdopen(requests_w, "wb")
        self.stdout = os.fdopen(answers_r, "rb")
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: its status is lost
                self.returncode = 0
            else:
                if pid == self.pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"supervisor pool (pid {self.pid})", timeout or 0)
            time.sleep(0.005)
        return code

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)


def _forked_helper(root: str, limit: int | None, requests: int, answers: int) -> None:
    """The forked helper: as ``python -m runyard.supervisor.pool`` would be, then exit."""
    code = 1
    try:
        os.setsid()  # no terminal signal reaches it or its workers
        os.dup2(requests, 0)
        os.dup2(answers, 1)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # the caller's files (its lock) are not ours
        for sig in signal.valid_signals():  # the caller's handlers are not ours either
            if callable(signal.getsignal(sig)):
                signal.signal(sig, signal.SIG_DFL)
        # Nor its standard streams (replaced by a test runner, a notebook): plain files on
        # descriptors 1 and 2, as an interpreter of its own would have.
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True)
        logging.root.handlers.clear()  # which may write to the streams replaced
        code = _Helper(root, limit).serve()
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


# -- the helper process ----------------------------------------------------------------------
@dataclass
class _Worker:
    pid: int
    queue_fd: int  #: the helper writes run ids here
    run_id: str | None = None


def _say(*fields: object) -> None:
    line = "\t".join(str(f).replace("\t", " ").replace("\n", " ") for f in fields) + "\n"
    with contextlib.suppress(OSError):  # the caller went away: nobody to tell
        os.write(1, line.encode())


class _Helper:
    """The helper's state: its workers, and the pipes it watches."""

    def __init__(self, root: str, limit: int | None = None):
        self.root = root
        self.limit = limit
        self.workers: dict[int, _Worker] = {}
        #: Requests beyond the limit, first come first served.
        self.waiting: collections.deque[str] = collections.deque()
        self.wake_r, self.wake_w = os.pipe()  # SIGCHLD
        self.done_r, self.done_w = os.pipe()  # workers: "RUN_ID PID" when done with a run
        os.set_blocking(self.wake_w, False)

    def serve(self) -> int:
        """Hand runs to workers, report their ends, stop at EOF on stdin."""
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda _sig, _frame: None)  # wakes select via wake_w
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        requests = done = b""
        while True:
            try:
                ready, _, _ = select.select([0, self.wake_r, self.done_r], [], [])
            except InterruptedError:
                continue
            if self.done_r in ready:
                done += os.read(self.done_r, 65536)
                *lines, done = done.split(b"\n")
                for line in lines:
                    self.finished(int(line.split()[1]))
            if self.wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self.wake_r, 4096)
                self.reap()
            self.dispatch()
            if 0 in ready:
                chunk = os.read(0, 65536)
                if not chunk:
                    break
                requests += chunk
                *lines, requests = requests.split(b"\n")
                for line in lines:
                    self.assign(line.decode("utf-8", "replace").strip())
        for w in self.workers.values():  # the caller is gone: each worker exits once idle
            if w.queue_fd >= 0:
                os.close(w.queue_fd)
        return 0

    def assign(self, request: str) -> None:
        """Hand ``request`` to a worker now, or keep it waiting if the limit is reached."""
        run_id = request.partition("\t")[0]
        if self.limit is not None and self.busy() >= self.limit:
            self.waiting.append(request)
            _say("queued", run_id)
        elif isinstance(got := self.hand(request), int):
            _say("started", run_id, got)
        else:
            _say("error", run_id, got)

    def busy(self) -> int:
        return sum(1 for w in self.workers.values() if w.run_id is not None)

    def hand(self, request: str) -> int | str:
        """Give ``request`` to an idle worker (a new one if none is): its pid, or why not."""
        idle = next(
            (w for w in self.workers.values() if w.run_id is None and w.queue_fd >= 0), None
        )
        if idle is None:
            # The new worker must not hold the others' queues, or they would never see EOF.
            others = tuple(w.queue_fd for w in self.workers.values() if w.queue_fd >= 0)
            try:
                idle = _fork_worker(
                    self.root, self.done_w, close=(self.wake_r, self.wake_w, self.done_r, *others)
                )
            except OSError as e:
                return f"could not start a worker: {e}"
            self.workers[idle.pid] = idle
        try:
            os.write(idle.queue_fd, f"{request}\n".encode())
        except OSError as e:  # it died meanwhile
            return f"the worker (pid {idle.pid}) is gone: {e}"
        idle.run_id = request.partition("\t")[0]
        return idle.pid

    def finished(self, pid: int) -> None:
        w = self.workers.get(pid)
        if w is None or w.run_id is None:
            return
        _say("ended", w.run_id, pid)
        w.run_id = None
        if self.waiting:
            return  # the next waiting run takes the slot (dispatch)
        for other in self.workers.values():  # a slot is free: a waiting run may take it
            if other.run_id is not None and other.queue_fd >= 0:
                with contextlib.suppress(OSError):
                    os.write(other.queue_fd, WAKE)
        if sum(1 for x in self.workers.values() if x.run_id is None) > KEEP_IDLE:
            os.close(w.queue_fd)  # it exits
            w.queue_fd = -1

    def dispatch(self) -> None:
        """Hand waiting requests to workers while under the limit. One that cannot be handed
        (no worker could be started, or one died) waits on for the next try."""
        while self.waiting and (self.limit is None or self.busy() < self.limit):
            request = self.waiting.popleft()
            got = self.hand(request)
            if not isinstance(got, int):
                self.waiting.appendleft(request)
                break
            _say("assigned", request.partition("\t")[0], got)

    def reap(self) -> None:
        for pid in list(self.workers):
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == 0:
                    continue
            self.finished(pid)  # it died with a run: over for this pool either way
            w = self.workers.pop(pid)
            if w.queue_fd >= 0:
                os.close(w.queue_fd)


def _fork_worker(root: str, done_fd: int, *, close: tuple[int, ...]) -> _Worker:
    queue_r, queue_w = os.pipe()
    pid = os.fork()
    if pid:
        os.close(queue_r)
        return _Worker(pid, queue_w)
    code = 0
    try:  # the worker: what start_detached makes of a supervisor, serving run after run
        os.setsid()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        for fd in (*close, queue_w):
            os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.dup2(2, 1)  # not the helper's answers; each run's log once it has one
        import random

        from runyard.supervisor.process import become_subreaper

        random.seed()  # not the helper's sequence, shared with every sibling
        become_subreaper()  # a run's orphans come to the worker, which reaps them
        code = _work(root, queue_r, done_fd)
    except SystemExit as e:  # SIGTERM while idle
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _work(root: str, queue_fd: int, done_fd: int) -> int:
    """A worker's loop: supervise each run id read from ``queue_fd`` until EOF."""
    from runyard.supervisor.run import Supervisor
    from runyard.workspace import Layout, Resources

    current: list[Supervisor] = []

    def on_term(_sig: int, _frame: object) -> None:
        if not current:
            raise SystemExit(0)  # idle: nothing to cancel
        current[0].interrupt("canceled: supervisor received SIGTERM")

    signal.signal(signal.SIGTERM, on_term)
    layout = Layout(Path(root))
    resources: Resources | None = None
    requests: queue.Queue[str | None] = queue.Queue()
    slot_freed = threading.Event()
    threading.Thread(
        target=_read_queue,
        args=(queue_fd, requests, slot_freed),
        name="runyard pool queue",
        daemon=True,
    ).start()
    try:
        while (request := requests.get()) is not None:  # a signal interrupts the wait
            slot_freed.clear()
            run_id, record = _decode(request)
            path = layout.supervisor_log(run_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            log = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.dup2(log, 1)
            os.dup2(log, 2)
            os.close(log)
            ok = False
            try:
                if resources is None:
                    resources = Resources.open(root)
                current.append(Supervisor(resources, run_id, slot_freed=slot_freed, record=record))
                run = current[0].supervise()
                print(f"run {run.id}: {run.status}" + (f" ({run.reason})" if run.reason else ""))
                ok = run.status.is_terminal
            except Exception:
                import traceback

                traceback.print_exc()
            finally:
                current.clear()
                sys.stdout.flush()
                sys.stderr.flush()
            os.write(done_fd, f"{run_id} {os.getpid()}\n".encode())
            if not ok:
                return 1  # leave the run to be found lost by this dead pid
    finally:
        if resources is not None:
            resources.close()
    return 0


def _read_queue(fd: int, requests: queue.Queue[str | None], slot_freed: threading.Event) -> None:
    """A worker's reader of its queue: requests to ``requests`` (None at EOF); ``wake``
    sets ``slot_freed``."""
    with os.fdopen(fd, "rb", buffering=0) as reader:
        for line in reader:
            if line == WAKE:
                slot_freed.set()
            else:
                requests.put(line.decode().strip())
    requests.put(None)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m runyard.supervisor.pool")
    parser.add_argument("--workspace", required=True, help="the workspace folder")
    parser.add_argument("--limit", type=int, help="at most this many runs at once")
    args = parser.parse_args(argv)
    # What every worker would otherwise import itself, before its first run.
    import runyard.store.sql
    import runyard.supervisor.run  # noqa: F401

    return _Helper(args.workspace, args.limit).serve()


if __name__ == "__main__":
    sys.exit(main())
