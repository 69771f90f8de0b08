"""``python -m runyard.supervisor RUN_ID --workspace ROOT``: supervise one run, detached.

Started by the local backend in its own session with stdout and stderr appended to the
run's ``supervisor.log``. Exits 0 once the run is terminal (whatever its status), 1 if the
supervisor could not even record its failure. SIGTERM (e.g. a shutdown) cancels the run.
"""

from __future__ import annotations

import argparse
import signal
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runyard.supervisor")
    parser.add_argument("run_id")
    parser.add_argument("--workspace", required=True, help="the workspace folder")
    args = parser.parse_args(argv)

    from runyard.supervisor.process import become_subreaper
    from runyard.supervisor.run import Supervisor
    from runyard.workspace import Resources

    become_subreaper()  # a run's orphans come here, and are reaped as the run ends
    resources = Resources.open(args.workspace)
    try:
        supervisor = Supervisor(resources, args.run_id)
        signal.signal(
            signal.SIGTERM,
            lambda _sig, _frame: supervisor.interrupt("canceled: supervisor received SIGTERM"),
        )
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        run = supervisor.supervise()
        print(f"run {run.id}: {run.status}" + (f" ({run.reason})" if run.reason else ""))
    finally:
        resources.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
