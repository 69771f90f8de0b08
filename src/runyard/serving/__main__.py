"""``python -m runyard.serving --endpoint NAME --workspace ROOT``: an endpoint's server.

Started detached by ``runyard endpoint create``; see :mod:`runyard.serving.process`."""

from __future__ import annotations

import argparse
import signal
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runyard.serving")
    parser.add_argument("--endpoint", required=True, help="the endpoint's name")
    parser.add_argument("--workspace", required=True, help="the workspace folder")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    from runyard.serving.process import run_endpoint
    from runyard.workspace import Resources

    resources = Resources.open(args.workspace)
    try:
        return run_endpoint(resources, args.endpoint)
    finally:
        resources.close()


if __name__ == "__main__":
    sys.exit(main())
