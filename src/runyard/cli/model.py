"""The model registry: ``runyard model register|ls|show|alias|tag|download|delete``."""

from __future__ import annotations

from typing import Any

import click

from runyard.cli.main import cli, with_workspace
from runyard.cli.output import fmt_size, fmt_time, fmt_value, number, to_json
from runyard.records import ModelVersion


def model_dict(mv: ModelVersion) -> dict[str, Any]:
    return {
        "name": mv.name,
        "version": mv.version,
        "ref": mv.ref,
        "framework": mv.framework,
        "framework_version": mv.framework_version,
        "description": mv.description,
        "created_at": mv.created_at,
        "aliases": list(mv.aliases),
        "tags": mv.tags,
        "properties": mv.properties,
        "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in mv.files],
        "size": mv.size,
        "run_id": mv.run_id,
        "run_params": mv.run_params,
        "run_metrics": {k: number(v) for k, v in mv.run_metrics.items()},
        "source": mv.source,
    }


@cli.group()
def model() -> None:
    """Registered models: named, versioned, immutable sets of files."""


@model.command()
@click.argument("name")
@click.option(
    "--path",
    "-p",
    "paths",
    multiple=True,
    required=True,
    help="A file or folder (repeatable); with --run, the run's artifact path (outputs/model.onnx).",
)
@click.option("--run", "run_id", help="Register from this run's stored outputs (with lineage).")
@click.option("--framework", help="onnx, torchscript, torch.export, sklearn (default: detected).")
@click.option("--framework-version", help="Default: the installed version of the framework.")
@click.option("--description", "-d", help="What this version is.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Tag (repeatable).")
@click.option(
    "--property",
    "properties",
    multiple=True,
    metavar="KEY=VALUE",
    help="Immutable property (repeatable).",
)
@click.option("--alias", "aliases", multiple=True, help="Point this alias at the new version.")
@click.option("--json", "as_json", is_flag=True, help="The new version as JSON.")
@with_workspace
def register(
    ws: Any,
    name: str,
    paths: tuple[str, ...],
    run_id: str | None,
    framework: str | None,
    framework_version: str | None,
    description: str | None,
    tags: tuple[str, ...],
    properties: tuple[str, ...],
    aliases: tuple[str, ...],
    as_json: bool,
) -> None:
    """Register the next version of model NAME from files or a run's outputs."""
    from runyard.client import parse_tags

    mv = ws.models.register(
        name,
        paths[0] if len(paths) == 1 else list(paths),
        run_id=run_id,
        framework=framework,
        framework_version=framework_version,
        description=description,
        tags=parse_tags(tags),
        properties=parse_tags(properties, what="--property"),
    )
    for alias in aliases:
        ws.models.set_alias(mv.name, alias, mv.version)
    if aliases:
        mv = ws.models.get(mv.ref)
    if as_json:
        click.echo(to_json(model_dict(mv)))
        return
    framework_text = f" ({mv.framework})" if mv.framework else ""
    click.echo(f"registered {mv.ref}{framework_text}: {len(mv.files)} file(s), {fmt_size(mv.size)}")


@model.command("ls")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="JSON list of versions.")
@with_workspace
def ls(ws: Any, name: str | None, as_json: bool) -> None:
    """List models (their latest versions), or every version of NAME."""
    versions = ws.models.list(name)
    if as_json:
        click.echo(to_json([model_dict(v) for v in versions]))
        return
    if not versions:
        click.echo(f"model {name!r} has no versions" if name else "no models", err=True)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    if name is None:
        counts: dict[str, int] = {}
        aliases: dict[str, list[str]] = {}
        latest: dict[str, ModelVersion] = {}
        for v in versions:
            counts[v.name] = counts.get(v.name, 0) + 1
            aliases.setdefault(v.name, []).extend(f"{a}→{v.version}" for a in v.aliases)
            latest.setdefault(v.name, v)
        for col in ("NAME", "LATEST", "VERSIONS", "ALIASES", "FRAMEWORK", "CREATED"):
            table.add_column(col, no_wrap=True)
        for n, v in latest.items():
            table.add_row(
                n,
                str(v.version),
                str(counts[n]),
                " ".join(aliases[n]),
                v.framework or "",
                fmt_time(v.created_at),
            )
    else:
        for col in ("VERSION", "ALIASES", "FRAMEWORK", "SIZE", "CREATED", "RUN", "TAGS"):
            table.add_column(col, no_wrap=True)
        for v in versions:
            table.add_row(
                str(v.version),
                " ".join(v.aliases),
                v.framework or "",
                fmt_size(v.size),
                fmt_time(v.created_at),
                v.run_id or "",
                " ".join(f"{k}={val}" for k, val in sorted(v.tags.items())),
            )
    console = Console()
    if not console.is_terminal:
        console.width = 250
    console.print(table)


@model.command()
@click.argument("ref", metavar="NAME[@VERSION|@ALIAS]")
@click.option("--json", "as_json", is_flag=True, help="Everything as JSON.")
@with_workspace
def show(ws: Any, ref: str, as_json: bool) -> None:
    """Show a model version: files, framework, tags, properties, aliases, lineage."""
    mv = ws.models.get(ref)
    if as_json:
        click.echo(to_json(model_dict(mv)))
        return
    out = [f"model {mv.ref}"]
    rows = [
        ("framework", " ".join(x for x in (mv.framework, mv.framework_version) if x)),
        ("description", mv.description),
        ("aliases", ", ".join(mv.aliases)),
        ("created", fmt_time(mv.created_at)),
        ("source", mv.source),
        ("run", mv.run_id),
    ]
    out += [f"  {label:<12} {value}" for label, value in rows if value]
    for title, mapping in (("tags", mv.tags), ("properties", mv.properties)):
        if mapping:
            out.append(title)
            out += [f"  {k} = {v}" for k, v in sorted(mapping.items())]
    if mv.run_id:
        if mv.run_params:
            out.append("run params")
            out += [f"  {k} = {v}" for k, v in sorted(mv.run_params.items())]
        if mv.run_metrics:
            out.append("run metrics (final)")
            out += [f"  {k} = {fmt_value(v)}" for k, v in sorted(mv.run_metrics.items())]
    out.append("files")
    out += [f"  {fmt_size(f.size):>10}  {f.path}  sha256:{f.sha256[:12]}" for f in mv.files]
    click.echo("\n".join(out))


@model.command()
@click.argument("name")
@click.argument("alias")
@click.argument("version", type=int, required=False)
@click.option("--delete", is_flag=True, help="Remove the alias.")
@with_workspace
def alias(ws: Any, name: str, alias: str, version: int | None, delete: bool) -> None:
    """Point NAME@ALIAS at VERSION (or remove it with --delete)."""
    from runyard.errors import UserError

    if delete == (version is not None):
        raise UserError("give a VERSION to point the alias at, or --delete (not both)")
    ws.models.set_alias(name, alias, version)
    click.echo(f"{name}@{alias} removed" if delete else f"{name}@{alias} → {name}@{version}")


@model.command()
@click.argument("ref", metavar="NAME@VERSION")
@click.argument("tags", nargs=-1, metavar="KEY=VALUE...")
@click.option("--delete", "deleted", multiple=True, metavar="KEY", help="Remove a tag.")
@click.option("--description", "-d", help="Change the description.")
@with_workspace
def tag(
    ws: Any, ref: str, tags: tuple[str, ...], deleted: tuple[str, ...], description: str | None
) -> None:
    """Set or remove tags of a model version (tags and the description may change)."""
    from runyard.client import parse_tags

    mv = ws.models.update(
        ref, set_tags=parse_tags(tags, what="tag"), delete_tags=deleted, description=description
    )
    shown = " ".join(f"{k}={v}" for k, v in sorted(mv.tags.items())) or "(no tags)"
    click.echo(f"{mv.ref}: {shown}")


@model.command()
@click.argument("ref", metavar="NAME[@VERSION|@ALIAS]")
@click.option(
    "--output",
    "-o",
    "dest",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder to download into.",
)
@with_workspace
def download(ws: Any, ref: str, dest: str) -> None:
    """Download a model version's files (hashes checked)."""
    files = ws.models.download(ref, dest)
    click.echo(f"downloaded {len(files)} file(s) of {ws.models.get(ref).ref} to {dest}", err=True)


@model.command()
@click.argument("ref", metavar="NAME@VERSION")
@with_workspace
def delete(ws: Any, ref: str) -> None:
    """Delete a model version and its files (refused while an endpoint serves it)."""
    mv = ws.models.delete(ref)
    click.echo(f"deleted {mv.ref}")
