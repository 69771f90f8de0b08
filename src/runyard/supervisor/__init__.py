"""The run supervisor: runs one run on this machine end to end.

:class:`Supervisor` takes a recorded (Queued) run through its whole lifecycle in the
calling process; ``python -m runyard.supervisor RUN_ID --workspace ROOT`` does the same in
a detached process (what the local backend starts). :func:`reap_lost` fails runs whose
supervisor vanished and ends their processes.
"""

from runyard.supervisor.reaper import reap_lost
from runyard.supervisor.run import Supervisor

__all__ = ["Supervisor", "reap_lost"]
