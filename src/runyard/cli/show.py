"""Reading runs: ``ls``, ``show``, ``metrics``."""

from __future__ import annotations

import csv
import sys
from typing import Any

import click

from runyard.cli.main import cli, with_workspace
from runyard.cli.output import (
    STATUS_STYLE,
    fmt_duration,
    fmt_time,
    fmt_value,
    point_dict,
    run_dict,
    to_json,
)
from runyard.errors import UserError
from runyard.records import Run, RunStatus


def _statuses(values: tuple[str, ...]) -> list[RunStatus] | None:
    if not values:
        return None
    known = {s.value.lower(): s for s in RunStatus}
    out = []
    for v in values:
        if v.lower() not in known:
            raise UserError(
                f"--status {v!r}: expected one of {', '.join(s.value for s in RunStatus)}"
            )
        out.append(known[v.lower()])
    return out


@cli.command("ls")
@click.option("--experiment", "-e", help="Only runs of this experiment.")
@click.option(
    "--status", "-s", "statuses", multiple=True, help="Only runs with this status (repeatable)."
)
@click.option(
    "--tag",
    "tags",
    multiple=True,
    metavar="KEY=VALUE",
    help="Only runs with this tag (repeatable).",
)
@click.option(
    "--sort",
    "order_by",
    metavar="created|duration|metric:KEY[:asc]",
    help="Order (default: newest first; metrics highest first).",
)
@click.option(
    "--limit", "-n", type=int, default=50, show_default=True, help="At most this many runs."
)
@click.option("--all", "show_all", is_flag=True, help="No limit.")
@click.option("--json", "as_json", is_flag=True, help="JSON list of runs.")
@with_workspace
def ls(
    ws: Any,
    experiment: str | None,
    statuses: tuple[str, ...],
    tags: tuple[str, ...],
    order_by: str | None,
    limit: int,
    show_all: bool,
    as_json: bool,
) -> None:
    """List runs."""
    from runyard.client import parse_tags

    ws.reap()
    runs = ws.search_runs(
        experiment=experiment,
        statuses=_statuses(statuses),
        tags=parse_tags(tags),
        order_by=order_by,
        limit=None if show_all else limit,
    )
    if as_json:
        # Compact: the C encoder is ten times faster than the indenting one on long lists.
        click.echo(to_json([run_dict(r) for r in runs], indent=None))
        return
    if not runs:
        click.echo("no runs", err=True)
        return
    from rich.console import Console
    from rich.table import Table

    metric_keys: list[str] = []
    if order_by and order_by.startswith("metric:"):
        metric_keys.append(order_by.split(":")[1])
    for r in runs:
        for k in r.metrics:
            if k not in metric_keys and not k.startswith("system/") and len(metric_keys) < 4:
                metric_keys.append(k)
    table = Table(box=None, header_style="bold")
    for col in ("RUN", "EXPERIMENT", "NAME", "STATUS", "CREATED", "DURATION", *metric_keys):
        table.add_column(col, no_wrap=True)
    for r in runs:
        style = STATUS_STYLE.get(r.status.value, "")
        table.add_row(
            r.id,
            r.experiment,
            r.name or "",
            f"[{style}]{r.status.value}[/]" if style else r.status.value,
            fmt_time(r.created_at),
            fmt_duration(r.duration),
            *[fmt_value(r.metrics[k]) if k in r.metrics else "" for k in metric_keys],
        )
    console = Console()
    if not console.is_terminal:
        console.width = 250  # piped or captured: don't cut columns to 80 characters
    console.print(table)


@cli.command()
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Everything as JSON.")
@with_workspace
def show(ws: Any, run_id: str, as_json: bool) -> None:
    """Show a run: spec, params, final metrics, status history, snapshot, git, environment."""
    ws.reap()
    run = ws.get_run(run_id)
    history = ws.status_history(run.id)
    data = run_dict(run)
    data["spec"] = run.spec
    data["status_history"] = [
        {"status": h.status.value, "time": h.time, "reason": h.reason} for h in history
    ]
    if as_json:
        click.echo(to_json(data))
        return
    from rich.console import Console

    con = Console(soft_wrap=True, highlight=False)
    spec = run.spec
    cmd = spec.get("command")
    cmd_text = cmd if isinstance(cmd, str) else " ".join(cmd or [])
    con.print(
        f"[bold]run[/] {run.id}   [bold]experiment[/] {run.experiment}   "
        f"[bold]status[/] [{STATUS_STYLE.get(run.status.value, '')}]{run.status.value}[/]"
    )
    rows = [
        ("name", run.name),
        ("command", cmd_text),
        ("code", spec.get("code")),
        ("compute", run.compute),
        ("created", fmt_time(run.created_at)),
        ("duration", fmt_duration(run.duration)),
        ("exit code", run.exit_code),
        ("reason", run.reason),
        ("snapshot", run.snapshot_id),
        ("git", _git_line(run.git)),
        ("environment", _env_line(run)),
        ("parent", run.parent_id),
    ]
    for label, value in rows:
        if value is not None and value != "":
            con.print(f"  {label:<12} {value}", markup=False)
    for title, mapping in (("params", run.params), ("tags", run.tags)):
        if mapping:
            con.print(f"[bold]{title}[/]")
            for k, v in sorted(mapping.items()):
                con.print(f"  {k} = {v}", markup=False)
    if run.metrics:
        con.print("[bold]metrics[/] (latest)")
        for k, v in sorted(run.metrics.items()):
            con.print(f"  {k} = {fmt_value(v)}", markup=False)
    con.print("[bold]status history[/]")
    for h in history:
        why = f"  ({h.reason})" if h.reason else ""
        con.print(f"  {fmt_time(h.time)}  {h.status.value}{why}", markup=False)
    if run.error:
        con.print("[bold]error tail[/]")
        con.print(run.error.rstrip("\n"), markup=False)


def _git_line(git: dict[str, Any] | None) -> str | None:
    if not git:
        return None
    dirty = " (uncommitted changes: logs/git_diff.patch)" if git.get("dirty") else ""
    branch = f" on {git['branch']}" if git.get("branch") else ""
    return f"{git.get('commit', '?')[:12]}{branch}{dirty}"


def _env_line(run: Run) -> str:
    """The environment the run used (as the supervisor tagged it once prepared), or the one
    its spec asks for; and where its lock is."""
    from runyard.supervisor.environment import (
        LOCK_FILE,
        TAG_HASH,
        TAG_IMAGE,
        TAG_PYTHON,
        TAG_REF,
    )

    env: dict[str, Any] = run.spec.get("environment") or {}
    tags = run.tags
    ref = tags.get(TAG_REF) or env.get("ref")
    about = []
    if TAG_IMAGE in tags:
        about.append(f"image {tags[TAG_IMAGE]}")
    elif TAG_HASH in tags:
        about.append(f"environment {tags[TAG_HASH][:12]}")
    elif TAG_PYTHON in tags:
        about.append("runyard's own interpreter")
    if TAG_PYTHON in tags:
        about.append(f"Python {tags[TAG_PYTHON]}")
    if not ref:
        if env.get("pip"):
            about.append("pip: " + ", ".join(env["pip"]))
        for key in ("requirements", "conda_file"):
            if env.get(key):
                about.append(f"{key}: {env[key]}")
    if env.get("env_vars"):
        about.append("vars: " + ", ".join(f"{k}={v}" for k, v in env["env_vars"].items()))
    text = ", ".join(about)
    if ref:
        text = f"{ref} ({text})" if text else str(ref)
    if not text:
        return "current interpreter"
    if TAG_PYTHON in tags and TAG_IMAGE not in tags:
        text += f"; lock: logs/{LOCK_FILE} (runyard env export {run.id})"
    return text


@cli.command()
@click.argument("run_id")
@click.argument("key", required=False)
@click.option("--rank", type=int, default=0, show_default=True, help="Process rank (with KEY).")
@click.option("--all-ranks", is_flag=True, help="Every rank's points (with KEY).")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV output.")
@with_workspace
def metrics(
    ws: Any, run_id: str, key: str | None, rank: int, all_ranks: bool, as_json: bool, as_csv: bool
) -> None:
    """A run's metrics: latest values, or one KEY's full history."""
    if as_json and as_csv:
        raise UserError("choose one of --json and --csv")
    run = ws.get_run(run_id)
    if key is None:
        latest = run.metrics
        if as_json:
            from runyard.cli.output import number

            click.echo(to_json({k: number(v) for k, v in sorted(latest.items())}))
        elif as_csv:
            w = csv.writer(sys.stdout)
            w.writerow(["key", "value"])
            for k, v in sorted(latest.items()):
                w.writerow([k, repr(v)])
        else:
            if not latest:
                click.echo(f"run {run.id} has no metrics", err=True)
            for k, v in sorted(latest.items()):
                click.echo(f"{k}\t{fmt_value(v)}")
        return
    points = ws.metric_history(run.id, key, rank=None if all_ranks else rank)
    if as_json:
        click.echo(to_json({"run": run.id, "key": key, "points": [point_dict(p) for p in points]}))
    elif as_csv:
        w = csv.writer(sys.stdout)
        w.writerow(["step", "value", "timestamp", "rank"])
        w.writerows([p.step, repr(p.value), p.timestamp, p.rank] for p in points)
    else:
        out = sys.stdout
        out.write("step\tvalue\trank\n")
        out.writelines(f"{p.step}\t{fmt_value(p.value)}\t{p.rank}\n" for p in points)
