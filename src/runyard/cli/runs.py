"""Starting and stopping runs: ``run``, ``submit``, ``rerun``, ``cancel``, ``logs``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from runyard.cli.main import cli, with_workspace
from runyard.errors import SpecError
from runyard.records import Run, RunStatus

_RUN_SETTINGS = {"ignore_unknown_options": True}


def _job_options(fn: Any) -> Any:
    options = [
        click.option(
            "--experiment", "-e", help="Experiment name (default: the job's, else Default)."
        ),
        click.option("--name", help="Display name of the run."),
        click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Tag (repeatable)."),
        click.option(
            "--code",
            type=click.Path(file_okay=False),
            help="Code folder to snapshot (a command without YAML: the current folder).",
        ),
        click.option("--compute", help="Compute target (default: the job's, else local)."),
        click.option("--timeout", help="Cancel the run after this long: 600, 10m, 2h."),
        click.option(
            "--env",
            "env",
            multiple=True,
            metavar="KEY=VALUE",
            help="Environment variable for the run (repeatable).",
        ),
        click.option(
            "--input",
            "inputs",
            multiple=True,
            metavar="NAME=VALUE",
            help="Set an input, used by ${{inputs.NAME}} in the command (repeatable).",
        ),
        click.argument("args", nargs=-1, type=click.UNPROCESSED),
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn


def build_spec(
    args: tuple[str, ...],
    *,
    experiment: str | None,
    name: str | None,
    tags: tuple[str, ...],
    code: str | None,
    compute: str | None,
    timeout: str | None,
    env: tuple[str, ...],
    inputs: tuple[str, ...],
) -> Any:
    """A job spec from a YAML file (``job.yaml [COMMAND...]``) or a bare command."""
    from runyard.client import parse_tags
    from runyard.spec import InputSpec, JobSpec, LimitsSpec, parse_duration

    if not args:
        raise SpecError("give a job YAML file or a command after --", source="<cli>")
    if args[0].endswith((".yaml", ".yml")):
        from runyard.spec.load import load_job

        spec = load_job(args[0])
        if len(args) > 1:
            spec = spec.replace(command=tuple(args[1:]))
        if code is not None:
            spec = spec.replace(code=str(Path(code).resolve()))
    else:
        folder = Path(code or ".").resolve()
        if not folder.is_dir():
            raise SpecError(
                f"code folder {str(folder)!r} does not exist", source="<cli>", field="--code"
            )
        spec = JobSpec(command=tuple(args), code=str(folder), source="<cli>")
    changes: dict[str, Any] = {}
    if experiment:
        changes["experiment"] = experiment
    if name:
        changes["name"] = name
    if compute:
        changes["compute"] = compute
    if tags:
        changes["tags"] = {**spec.tags, **parse_tags(tags)}
    if timeout:
        try:
            changes["limits"] = LimitsSpec(timeout=parse_duration(timeout))
        except ValueError as exc:
            raise SpecError(str(exc), source="<cli>", field="--timeout") from None
    if env:
        variables = {**spec.environment.env_vars, **parse_tags(env, what="--env")}
        changes["environment"] = spec.environment.__class__(
            **{**spec.environment.__dict__, "env_vars": variables}
        )
    if inputs:
        given = parse_tags(inputs, what="--input")
        changes["inputs"] = {**spec.inputs, **{k: InputSpec(value=v) for k, v in given.items()}}
    return spec.replace(**changes) if changes else spec


def exit_code_of(run: Run) -> int:
    """The foreground command's exit status: 0 Completed, the run's exit code (else 1) when
    Failed, 130 when Canceled."""
    if run.status is RunStatus.COMPLETED:
        return 0
    if run.status is RunStatus.CANCELED:
        return 130
    code = run.exit_code or 1
    return code if 0 < code < 256 else 1


def _say(msg: str) -> None:
    click.echo(f"runyard: {msg}", err=True)


def _summary(run: Run) -> str:
    took = f" in {run.duration:.1f}s" if run.duration is not None else ""
    why = f" ({run.reason})" if run.reason and run.status is not RunStatus.COMPLETED else ""
    return f"run {run.id} {run.status.value}{why}{took}"


def _echo_line(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _finish(run: Run) -> None:
    _say(_summary(run))
    if run.status is RunStatus.FAILED and run.error:
        click.echo(run.error.rstrip("\n"), err=True)
    sys.exit(exit_code_of(run))


_DRY_RUN = click.option(
    "--dry-run",
    is_flag=True,
    help="Print each process's command, log and variables; record and start nothing.",
)


def _dry_run(ws: Any, spec: Any) -> None:
    click.echo(ws.plan(spec).describe(), nl=False)


@cli.command(context_settings=_RUN_SETTINGS)
@_job_options
@_DRY_RUN
@with_workspace
def run(ws: Any, args: tuple[str, ...], dry_run: bool, **options: Any) -> None:
    """Run a job in the foreground, streaming its output (a distributed job's lines
    prefixed by rank); exits with the run's outcome.

    \b
    runyard run job.yaml
    runyard run job.yaml --dry-run
    runyard run --experiment digits -- python train.py --lr 0.01
    """
    spec = build_spec(args, **options)
    if dry_run:
        _dry_run(ws, spec)
        return
    created = ws.create_run(spec)
    _say(
        f"run {created.id} (experiment {created.experiment}) started; "
        f"follow from another terminal with: runyard logs -f {created.id}"
    )
    finished = ws._run_foreground(created, _echo_line)
    _finish(finished)


@cli.command(context_settings=_RUN_SETTINGS)
@_job_options
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON.")
@_DRY_RUN
@with_workspace
def submit(ws: Any, args: tuple[str, ...], as_json: bool, dry_run: bool, **options: Any) -> None:
    """Record a run and start it detached; prints its id at once."""
    from runyard.backends import get_backend
    from runyard.cli.output import run_to_json

    spec = build_spec(args, **options)
    if dry_run:
        _dry_run(ws, spec)
        return
    created = ws.create_run(spec)
    get_backend(created.compute, ws.resources).submit(created.id)
    if as_json:
        click.echo(run_to_json(created))
    else:
        click.echo(created.id)


@cli.command()
@click.argument("run_id")
@click.option("--detach", "-d", is_flag=True, help="Start it detached and print its id.")
@with_workspace
def rerun(ws: Any, run_id: str, detach: bool) -> None:
    """Run again: the same snapshot and spec as RUN_ID, as a new run."""
    if detach:
        click.echo(ws.rerun(run_id, detach=True).id)
        return
    _finish(ws.rerun(run_id, echo=_echo_line))


@cli.command()
@click.argument("run_ids", nargs=-1, required=True)
@with_workspace
def cancel(ws: Any, run_ids: tuple[str, ...]) -> None:
    """Cancel runs: Queued ones at once, active ones within a few seconds."""
    for rid in run_ids:
        r = ws.cancel(rid)
        state = "canceled" if r.status is RunStatus.CANCELED else "cancel requested"
        click.echo(f"{r.id}: {state}")


@cli.command()
@click.argument("run_id")
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the run ends.")
@click.option("--rank", type=int, help="Only this rank's output (distributed runs).")
@with_workspace
def logs(ws: Any, run_id: str, follow: bool, rank: int | None) -> None:
    """Print a run's output (stdout and stderr), during or after the run; a distributed
    run's ranks merged, each line prefixed by its rank."""
    for line in ws.logs(run_id, follow=follow, rank=rank):
        _echo_line(line)
