"""From a sweep and one trial's parameters, the job that trial runs. Pure data in, data out.

Values reach the trial through ``${{search_space.NAME}}`` placeholders in its command; a
parameter the command does not mention is appended as ``--NAME VALUE``. The sweep's
``trial_timeout`` bounds the trial's own timeout.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping

from runyard.spec import JobSpec, LimitsSpec
from runyard.spec.job import PLACEHOLDER
from runyard.sweep.space import ParamValue, format_value
from runyard.sweep.spec import SweepSpec


def trial_params(params: Mapping[str, ParamValue]) -> dict[str, str]:
    """The params as recorded on the trial's run (and as written on its command line)."""
    return {name: format_value(v) for name, v in params.items()}


def _mentioned(parts: list[str]) -> set[str]:
    return {
        m.group(2)
        for part in parts
        for m in PLACEHOLDER.finditer(part)
        if m.group(1) == "search_space"
    }


def _substitute(text: str, values: Mapping[str, str]) -> str:
    def repl(m: re.Match[str]) -> str:
        return values[m.group(2)] if m.group(1) == "search_space" else m.group(0)

    return PLACEHOLDER.sub(repl, text)


def trial_job(sweep: SweepSpec, params: Mapping[str, ParamValue]) -> JobSpec:
    """The trial's job spec: placeholders filled, other params appended, timeout bounded.

    Other placeholders (``${{inputs.X}}``, ``${{outputs.Y}}``) are left for the run to fill.
    In a string command (run by the shell) appended values are shell-quoted."""
    job = sweep.trial
    values = trial_params(params)
    if isinstance(job.command, str):
        mentioned = _mentioned([job.command])
        extra = "".join(f" --{n} {shlex.quote(v)}" for n, v in values.items() if n not in mentioned)
        command: str | tuple[str, ...] = _substitute(job.command, values) + extra
    else:
        mentioned = _mentioned(list(job.command))
        args = [a for n, v in values.items() if n not in mentioned for a in (f"--{n}", v)]
        command = tuple(_substitute(a, values) for a in job.command) + tuple(args)
    timeout = job.limits.timeout
    if sweep.limits.trial_timeout is not None:
        timeout = min(t for t in (timeout, sweep.limits.trial_timeout) if t is not None)
    return job.replace(command=command, limits=LimitsSpec(timeout=timeout))
