"""Planning a launch on this machine: the impure inputs of :func:`~runyard.launch.plan_launch`
(free ports, the GPUs this machine shows) gathered, then the plan.

::

    plan = plan_local(spec, argv, environ=child_env)     # what the local supervisor executes
    check_launch(spec)                                   # at submit: spec errors before Queued

Simulated nodes (``resources.instance_count > 1``) all live on ``127.0.0.1``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence

from runyard.launch.plan import LaunchPlan, Placement
from runyard.launch.planner import plan_launch, ports_needed
from runyard.launch.ports import allocate_ports
from runyard.spec import JobSpec


def visible_gpus(environ: Mapping[str, str] | None = None) -> int:
    """How many CUDA devices a process started with ``environ`` sees, without importing a
    framework: the GPUs ``nvidia-smi -L`` lists (none without ``nvidia-smi``), narrowed by
    ``CUDA_VISIBLE_DEVICES`` when it is set. Like CUDA, the list is read up to its first
    entry that is not a device (``-1``, an empty string), so ``CUDA_VISIBLE_DEVICES=`` hides
    every GPU."""
    environ = os.environ if environ is None else environ
    listed = _nvidia_smi_count()
    masked = environ.get("CUDA_VISIBLE_DEVICES")
    if masked is None or listed == 0:
        return listed
    return min(listed, _count_visible(masked))


def _count_visible(value: str) -> int:
    count = 0
    for entry in (e.strip() for e in value.split(",")):
        if entry.isdigit() or entry.startswith(("GPU-", "MIG-")):
            count += 1
        else:
            break
    return count


def _nvidia_smi_count() -> int:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return 0
    try:
        out = subprocess.run(
            [exe, "-L"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def plan_local(
    spec: JobSpec, argv: Sequence[str], *, environ: Mapping[str, str] | None = None
) -> LaunchPlan:
    """The plan that runs ``spec`` (its command as ``argv``) on this machine, with fresh free
    ports and, for a distributed spec, the GPUs a process started with ``environ`` sees.

    Raises :class:`~runyard.errors.SpecError` for a spec that cannot be planned."""
    gpus = visible_gpus(environ) if spec.distribution is not None else 0
    ports = allocate_ports(ports_needed(spec, gpus_per_node=gpus))
    placement = Placement.local(spec.resources.instance_count, ports=ports, gpus_per_node=gpus)
    return plan_launch(spec, placement, argv=argv, as_root=_as_root(), python=sys.executable)


def check_launch(spec: JobSpec) -> None:
    """Raise the :class:`~runyard.errors.SpecError` that planning ``spec`` would raise at
    run time, without looking at this machine (no ports taken, no GPUs counted)."""
    needed = ports_needed(spec)
    ports = tuple(range(20000, 20000 + needed))  # any valid ports: nothing listens on them
    placement = Placement.local(spec.resources.instance_count, ports=ports)
    plan_launch(spec, placement, argv=("true",))


def _as_root() -> bool:
    geteuid = getattr(os, "geteuid", None)
    return geteuid is not None and geteuid() == 0
