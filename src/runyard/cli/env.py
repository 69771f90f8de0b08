"""Environments: ``env create``, ``ls``, ``show``, ``build``, ``export``, ``prune``."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import click

from runyard.cli.main import cli, with_workspace
from runyard.cli.output import fmt_size, fmt_time, to_json
from runyard.errors import NotFound, SpecError, UserError
from runyard.records import ACTIVE_STATUSES, EnvironmentRecord


@cli.group()
def env() -> None:
    """Environments: registered ones (named, versioned) and the cache of built ones.

    \b
    runyard env create NAME -f env.yaml      register (a new version only when it changed)
    runyard env ls ; runyard env show NAME[@V]
    runyard env build job.yaml|env.yaml|NAME[@V]   materialize ahead of time
    runyard env export RUN                   the exact packages a run used
    runyard env prune [--older-than 30d]     remove cached environments not in use
    """


def _say(msg: str) -> None:
    click.echo(f"runyard: {msg}", err=True)


@env.command("create")
@click.argument("name")
@click.option(
    "--file",
    "-f",
    "path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Environment YAML: the fields of a job's environment: (python, pip, requirements, "
    "conda_file, inherit, env_vars, image).",
)
@with_workspace
def create(ws: Any, name: str, path: str) -> None:
    """Register the environment in a YAML file as NAME; prints NAME@VERSION. Its files
    (requirements, conda_file) are read now, relative to the YAML file."""
    from runyard.envs import register
    from runyard.spec.load import load_environment

    spec = load_environment(path)
    try:
        done = register(ws.store, name, spec, base_dir=Path(path).resolve().parent)
    except SpecError as e:  # name the file and the field as the file spells it
        field = (e.field or "").removeprefix("environment").lstrip(".") or None
        raise SpecError(e.problem, source=path, field=field) from None
    click.echo(done.record.ref + ("" if done.created else " (unchanged)"))


@env.command("ls")
@click.option("--json", "as_json", is_flag=True, help="JSON list (latest version of each).")
@with_workspace
def ls(ws: Any, as_json: bool) -> None:
    """Registered environments: the latest version of each."""
    records = ws.store.list_environments()
    if as_json:
        click.echo(to_json([_record_dict(r) for r in records]))
        return
    if not records:
        click.echo("no registered environments (runyard env create NAME -f env.yaml)", err=True)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for col in ("NAME", "VERSION", "CREATED", "CONTENT"):
        table.add_column(col, no_wrap=col != "CONTENT")
    for r in records:
        table.add_row(r.name, str(r.version), fmt_time(r.created_at), _summary(r.definition))
    Console(soft_wrap=True, highlight=False).print(table)


@env.command("show")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="The version as JSON.")
@with_workspace
def show(ws: Any, ref: str, as_json: bool) -> None:
    """One registered version (REF is NAME, NAME@VERSION or NAME:VERSION; NAME is the
    latest): what it installs, and the other versions."""
    from runyard.envs import parse_ref

    name, version = parse_ref(ref)
    record = ws.store.get_environment(name, version)
    if as_json:
        click.echo(to_json(_record_dict(record)))
        return
    d = record.definition
    reqs = d.get("requirements") or {}
    versions = [r.version for r in ws.store.list_environments(name)]
    click.echo(f"{record.ref}   created {fmt_time(record.created_at)}")
    rows: list[tuple[str, Any]] = [
        ("python", d.get("python")),
        ("packages", reqs.get("requirements")),
        ("constraints", reqs.get("constraints")),
        ("options", reqs.get("options")),
        ("index-url", reqs.get("index_url")),
        ("extra-index", reqs.get("extra_index_urls")),
        ("find-links", reqs.get("find_links")),
        ("no-index", "true" if reqs.get("no_index") else None),
        ("inherit", "true" if d.get("inherit") else None),
        ("env_vars", [f"{k}={v}" for k, v in (d.get("env_vars") or {}).items()]),
        ("image", d.get("image")),
        ("digest", record.digest[:12]),
        ("versions", ", ".join(str(v) for v in versions)),
    ]
    for label, value in rows:
        values = value if isinstance(value, list) else [value]
        for i, item in enumerate(v for v in values if v not in (None, "")):
            click.echo(f"  {label if i == 0 else '':<12} {item}")


@env.command("build")
@click.argument("target")
@with_workspace
def build(ws: Any, target: str) -> None:
    """Materialize an environment ahead of time, showing the build: the environment of a
    job YAML, an environment YAML, or a registered NAME[@VERSION]. Runs that need it later
    find it in the cache."""
    from runyard.envs import materialize

    definition, base, what = _target(ws, target)
    environment = materialize(
        definition,
        envs_root=ws.resources.layout.envs,
        base_dir=base,
        log=lambda line: click.echo(f"  {line}", err=True),
        status=_say,
    )
    if environment.image is not None:
        click.echo(f"{what}: image {environment.image} (nothing to build)")
    elif environment.hash is None:
        click.echo(
            f"{what}: runyard's own interpreter (Python {environment.python_version}), "
            "nothing to build"
        )
    else:
        count = len(environment.lock)
        state = "from the cache" if environment.cached else "built"
        click.echo(
            f"{what}: environment {environment.short_hash} {state} "
            f"(Python {environment.python_version}, {count} package{'' if count == 1 else 's'})"
            f"\n  {environment.path}"
        )


def _target(ws: Any, target: str) -> tuple[Any, Path | None, str]:
    """(spec or definition, folder its files are relative to, how to name it)."""
    from runyard.envs import lookup
    from runyard.spec import EnvironmentSpec

    if not target.endswith((".yaml", ".yml")):
        record, definition = lookup(ws.store, target)
        return definition, None, record.ref
    import yaml

    from runyard.spec.load import load_environment, load_job

    path = Path(target)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        data = None  # the loader below says what is wrong
    if not (isinstance(data, dict) and "command" in data):
        return load_environment(path), path.resolve().parent, target
    job = load_job(path)
    env_spec: EnvironmentSpec = job.environment
    if env_spec.ref is not None:
        record, definition = lookup(ws.store, env_spec.ref)
        return definition, None, f"{target} ({record.ref})"
    base = Path(job.code) if job.code is not None else path.resolve().parent
    return env_spec, base, target


@env.command("export")
@click.argument("run_id")
@with_workspace
def export(ws: Any, run_id: str) -> None:
    """Print the exact packages run RUN_ID used (name==version per line, as pip freeze
    writes them): a lock to install the same environment elsewhere."""
    from runyard.supervisor.environment import LOCK_FILE

    run = ws.get_run(run_id)
    with tempfile.TemporaryDirectory() as tmp:
        dest = Path(tmp) / LOCK_FILE
        try:
            ws.resources.artifacts.get_file(f"{run.id}/logs/{LOCK_FILE}", dest)
        except NotFound:
            environment = (run.spec or {}).get("environment") or {}
            if not any(v for k, v in environment.items() if k != "env_vars"):
                why = "it ran in runyard's own interpreter as is (its environment sets no packages)"
            else:
                why = f"its environment was not prepared (the run is {run.status.value})"
            raise NotFound(f"run {run.id} recorded no environment lock: {why}") from None
        click.echo(dest.read_text(encoding="utf-8"), nl=False)


@env.command("prune")
@click.option(
    "--older-than",
    metavar="DURATION",
    help="Only environments not used for this long: 30d, 12h, 90m (default: any age).",
)
@with_workspace
def prune(ws: Any, older_than: str | None) -> None:
    """Remove cached environments to reclaim space: never one an active run uses, is being
    built, or was used in the last 5 minutes. Runs that need a removed one rebuild it."""
    from runyard.envs import prune as prune_cache
    from runyard.spec import parse_duration
    from runyard.supervisor.environment import TAG_HASH

    seconds = None
    if older_than is not None:
        try:
            seconds = parse_duration(older_than)
        except ValueError as e:
            raise UserError(f"--older-than {older_than!r}: {e}") from None
    ws.reap()  # runs whose supervisor is gone do not count as active
    active = ws.search_runs(statuses=list(ACTIVE_STATUSES))
    in_use = {r.tags[TAG_HASH] for r in active if TAG_HASH in r.tags}
    result = prune_cache(ws.resources.layout.envs, older_than=seconds, in_use=in_use)
    for digest in result.removed:
        click.echo(f"removed {digest[:12]}")
    click.echo(
        f"removed {len(result.removed)} environment(s), freed {fmt_size(result.freed_bytes)}; "
        f"kept {len(result.kept)}",
        err=True,
    )


def _record_dict(r: EnvironmentRecord) -> dict[str, Any]:
    return {
        "name": r.name,
        "version": r.version,
        "ref": r.ref,
        "created_at": r.created_at,
        "digest": r.digest,
        "definition": r.definition,
    }


def _summary(d: dict[str, Any]) -> str:
    reqs = d.get("requirements") or {}
    parts = []
    if d.get("python"):
        parts.append(f"python {d['python']}")
    if d.get("image"):
        parts.append(f"image {d['image']}")
    packages = list(reqs.get("requirements") or ())
    if packages:
        shown = ", ".join(packages[:4]) + (f" (+{len(packages) - 4})" if len(packages) > 4 else "")
        parts.append(shown)
    if d.get("inherit"):
        parts.append("inherit")
    if d.get("env_vars"):
        parts.append("vars: " + ", ".join(d["env_vars"]))
    return "; ".join(parts) or "variables only"
