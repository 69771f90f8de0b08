"""Hyperparameter sweeps: ``runyard sweep sweep.yaml``, ``show``, ``best``, ``resume``,
``cancel``.

``runyard sweep FILE.yaml`` is short for ``runyard sweep run FILE.yaml``."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import click

from runyard.cli.main import cli, with_workspace
from runyard.cli.output import STATUS_STYLE, fmt_duration, fmt_value, run_dict, to_json
from runyard.errors import NotFound
from runyard.records import Run, RunStatus

#: Rows of the live table; beyond it, active trials, the best ones and the latest are shown.
LIVE_ROWS = 20


class _SweepGroup(click.Group):
    """A group whose first argument may be a sweep file, meaning ``run FILE``."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands and args[0].endswith((".yaml", ".yml")):
            args = ["run", *args]
        return super().resolve_command(ctx, args)


@cli.group(cls=_SweepGroup)
def sweep() -> None:
    """Hyperparameter sweeps: trials of one job with sampled values, stopped early when
    losing.

    \b
    runyard sweep sweep.yaml [--detach]   run a sweep (short for: runyard sweep run ...)
    runyard sweep show SWEEP [--json]     trials sorted by the objective
    runyard sweep best SWEEP [--json]     the best trial and its values
    runyard sweep resume SWEEP            continue after the controller stopped
    runyard sweep cancel SWEEP            cancel the sweep and its running trials
    """


def _say(msg: str) -> None:
    click.echo(f"runyard: {msg}", err=True)


@sweep.command("run")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--detach", "-d", is_flag=True, help="Run the controller in the background.")
@with_workspace
def run_cmd(ws: Any, file: str, detach: bool) -> None:
    """Run the sweep in FILE, showing its trials live; exits 0 when it completes."""
    from runyard.sweep import create_sweep

    parent = create_sweep(ws, file)
    _drive(ws, parent, detach=detach, verb="started")


@sweep.command()
@click.argument("sweep_id")
@click.option("--detach", "-d", is_flag=True, help="Run the controller in the background.")
@with_workspace
def resume(ws: Any, sweep_id: str, detach: bool) -> None:
    """Continue a sweep whose controller stopped: no trial is repeated or lost."""
    from runyard.sweep import get_sweep

    _drive(ws, get_sweep(ws, sweep_id), detach=detach, verb="resumed")


def _drive(ws: Any, parent: Run, *, detach: bool, verb: str) -> None:
    from runyard.cli.runs import exit_code_of
    from runyard.sweep import resume_sweep

    if detach:
        resume_sweep(ws, parent.id, detach=True)
        _say(f"sweep {parent.id} {verb} in the background; see: runyard sweep show {parent.id}")
        click.echo(parent.id)
        return
    _say(f"sweep {parent.id} (experiment {parent.experiment}) {verb}; Ctrl-C cancels it")
    from rich.live import Live

    # The table (and its refresh thread) starts with the first update, once the first trials
    # were submitted: the controller's supervisor pool is then forked from a process of one
    # thread, which starts in milliseconds (see runyard.supervisor.pool).
    live: Live | None = None
    console = _console()

    def show(state: Any) -> None:
        nonlocal live
        if live is None:
            live = Live(console=console, auto_refresh=True, refresh_per_second=4)
            live.start()
        live.update(_live_table(state))

    try:
        final = resume_sweep(ws, parent.id, on_update=show)
    finally:
        if live is not None:
            live.stop()
            if not console.is_terminal:  # a file or a pipe: the table's last line ends here
                console.line()
    _say(_summary(ws, final))
    sys.exit(exit_code_of(final))


def _summary(ws: Any, final: Run) -> str:
    from runyard.sweep import best_trial, sweep_trials

    trials = sweep_trials(ws, final.id)
    why = f" ({final.reason})" if final.reason else ""
    took = f" in {fmt_duration(final.duration)}" if final.duration is not None else ""
    text = f"sweep {final.id} {final.status.value}{why}{took}: {len(trials)} trials"
    best = best_trial(ws, final.id)
    if best is not None and best.value is not None:
        metric = _metric(final)
        text += f"; best {metric} {fmt_value(best.value)} (trial {best.index}, run {best.id})"
    return text


def _metric(parent: Run) -> str:
    return str(parent.spec["sweep"]["objective"]["primary_metric"])


def _live_table(state: Any) -> Any:
    from runyard.sweep.results import ranked

    trials = state.trials
    if len(trials) > LIVE_ROWS:
        keep = {t.index for t in trials if not t.status.is_terminal}
        keep |= {t.index for t in ranked(trials, state.spec.objective.goal)[:5]}
        for t in reversed(trials):
            if len(keep) >= LIVE_ROWS:
                break
            keep.add(t.index)
        shown = [t for t in trials if t.index in keep]
    else:
        shown = trials
    limits = state.spec.limits
    title = (
        f"sweep {state.parent.id}  {state.parent.status.value}  "
        f"{len(trials)}/{limits.max_total_trials} trials"
    )
    if state.best is not None and state.best.value is not None:
        title += (
            f"  best {state.spec.objective.primary_metric} {fmt_value(state.best.value)} "
            f"(trial {state.best.index})"
        )
    table = _trial_table(shown, list(state.spec.search_space), state.spec.objective.primary_metric)
    table.title = title
    if len(shown) < len(trials):
        table.caption = f"{len(trials) - len(shown)} more: runyard sweep show {state.parent.id}"
    return table


def _trial_table(trials: list[Any], params: list[str], metric: str) -> Any:
    from rich.table import Table

    table = Table(box=None, header_style="bold", title_justify="left")
    for col in ("#", "RUN", "STATUS", *params, metric, "NOTE"):
        table.add_column(col, no_wrap=col != "NOTE")
    for t in trials:
        style = STATUS_STYLE.get(t.status.value, "")
        status = f"[{style}]{t.status.value}[/]" if style else t.status.value
        note = t.note or ""
        if t.run.status in (RunStatus.CANCELED, RunStatus.FAILED) and t.run.reason:
            note = f"{note}; {t.run.reason}" if note else t.run.reason
        table.add_row(
            str(t.index),
            t.id,
            status,
            *[_short(t.params.get(p, "")) for p in params],
            "" if t.value is None else fmt_value(t.value),
            note,
        )
    return table


@sweep.command()
@click.argument("sweep_id")
@click.option("--json", "as_json", is_flag=True, help="The sweep and its trials as JSON.")
@with_workspace
def show(ws: Any, sweep_id: str, as_json: bool) -> None:
    """A sweep's trials, best first by the objective, with their values and status."""
    from runyard.sweep import best_trial, controller_alive, get_sweep, sweep_trials
    from runyard.sweep.results import sweep_spec_of

    parent = get_sweep(ws, sweep_id)
    spec = sweep_spec_of(parent)
    trials = sweep_trials(ws, parent.id)
    best = best_trial(ws, parent.id)
    alive = controller_alive(ws.resources, parent)
    controller = {
        "alive": alive,
        "pid": parent.tags.get("runyard.controller_pid"),
        "host": parent.tags.get("runyard.controller_host"),
        "error": parent.tags.get("runyard.controller_error"),
    }
    if as_json:
        data = {
            "sweep": {**run_dict(parent), "spec": parent.spec["sweep"]},
            "objective": dataclasses.asdict(spec.objective),
            "controller": controller,
            "best": best.to_dict() if best is not None else None,
            "trials": [t.to_dict() for t in trials],
        }
        click.echo(to_json(data))
        return
    con = _console()
    style = STATUS_STYLE.get(parent.status.value, "")
    why = f" ({parent.reason})" if parent.reason else ""
    con.print(
        f"[bold]sweep[/] {parent.id}   [bold]experiment[/] {parent.experiment}   "
        f"[bold]status[/] [{style}]{parent.status.value}[/]{why}"
    )
    policy = spec.early_termination.to_dict() if spec.early_termination else None
    limits = spec.limits
    rows = [
        ("name", parent.name),
        ("objective", f"{spec.objective.goal} {spec.objective.primary_metric}"),
        ("sampling", f"{spec.sampling_algorithm.type} (seed {spec.sampling_algorithm.seed})"),
        ("early stop", _policy_text(policy)),
        (
            "limits",
            f"{limits.max_total_trials} trials, {limits.max_concurrent_trials} at once"
            + (f", timeout {limits.timeout:g}s" if limits.timeout else "")
            + (f", trial timeout {limits.trial_timeout:g}s" if limits.trial_timeout else ""),
        ),
        ("duration", fmt_duration(parent.duration)),
    ]
    if not parent.status.is_terminal:
        rows.append(("controller", _controller_text(parent.id, controller)))
    for label, value in rows:
        if value:
            con.print(f"  {label:<11} {value}", markup=False)
    if best is not None and best.value is not None:
        values = ", ".join(f"{k}={v}" for k, v in best.params.items())
        con.print(
            f"  {'best':<11} {spec.objective.primary_metric} {fmt_value(best.value)}: "
            f"trial {best.index} (run {best.id}) {values}",
            markup=False,
        )
    if not trials:
        con.print("no trials yet")
        return
    con.print(_trial_table(trials, list(spec.search_space), spec.objective.primary_metric))


def _console() -> Any:
    """A console for tables: as wide as the terminal, or wide enough not to wrap when the
    output is a file or a pipe."""
    from rich.console import Console

    con = Console(soft_wrap=True, highlight=False)
    return con if con.is_terminal else Console(soft_wrap=True, highlight=False, width=240)


def _short(value: str) -> str:
    """A recorded value as a table shows it: floats to 4 significant digits."""
    try:
        number = float(value)
    except ValueError:
        return value
    if number.is_integer() and "." not in value and "e" not in value.lower():
        return value
    return f"{number:.4g}"


def _policy_text(policy: dict[str, Any] | None) -> str:
    if policy is None:
        return "none"
    rest = ", ".join(f"{k} {v}" for k, v in policy.items() if k != "type")
    return f"{policy['type']} ({rest})" if rest else str(policy["type"])


def _controller_text(sweep_id: str, controller: dict[str, Any]) -> str:
    if controller["alive"]:
        return f"running (pid {controller['pid']} on {controller['host']})"
    text = f"not running; continue with: runyard sweep resume {sweep_id}"
    if controller["error"]:
        text += f" (last error: {controller['error']})"
    return text


@sweep.command()
@click.argument("sweep_id")
@click.option("--json", "as_json", is_flag=True, help="The best trial as JSON.")
@with_workspace
def best(ws: Any, sweep_id: str, as_json: bool) -> None:
    """The best trial of a sweep: its run, objective value and parameter values."""
    from runyard.sweep import best_trial, get_sweep

    parent = get_sweep(ws, sweep_id)
    trial = best_trial(ws, parent.id)
    metric = _metric(parent)
    if trial is None or trial.value is None:
        raise NotFound(f"sweep {parent.id} has no best trial yet (none ended with {metric} logged)")
    if as_json:
        click.echo(to_json({"sweep": parent.id, "metric": metric, **trial.to_dict()}))
        return
    click.echo(f"trial {trial.index} (run {trial.id}): {metric} {fmt_value(trial.value)}")
    for k, v in trial.params.items():
        click.echo(f"  {k} = {v}")


@sweep.command()
@click.argument("sweep_id")
@with_workspace
def cancel(ws: Any, sweep_id: str) -> None:
    """Cancel a sweep and its running trials (also when its controller is gone)."""
    from runyard.sweep import cancel_sweep

    run = cancel_sweep(ws, sweep_id)
    state = "canceled" if run.status is RunStatus.CANCELED else "cancel requested"
    click.echo(f"{run.id}: {state}")
