"""``python -m runyard.sweep SWEEP_ID --workspace ROOT``: drive one sweep, detached.

Started by ``runyard sweep --detach`` and ``runyard sweep resume --detach`` in its own
session, output appended to ``runs/<sweep>/controller.log``. Exits 0 once the sweep ended
(whatever its status), 2 when another controller drives it. SIGTERM and SIGINT cancel the
sweep; SIGHUP is ignored.
"""

from __future__ import annotations

import argparse
import signal
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runyard.sweep")
    parser.add_argument("sweep_id")
    parser.add_argument("--workspace", required=True, help="the workspace folder")
    args = parser.parse_args(argv)

    from runyard.errors import RunyardError
    from runyard.sweep.api import interrupts_cancel
    from runyard.sweep.controller import SweepController
    from runyard.workspace import Resources

    resources = Resources.open(args.workspace)
    try:
        controller = SweepController(resources, args.sweep_id)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        with interrupts_cancel(controller):
            run = controller.run()
        print(f"sweep {run.id}: {run.status}" + (f" ({run.reason})" if run.reason else ""))
    except RunyardError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    finally:
        resources.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
