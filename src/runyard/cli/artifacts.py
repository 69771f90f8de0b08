"""A run's files: ``artifacts`` and ``download``."""

from __future__ import annotations

from typing import Any

import click

from runyard.cli.main import cli, with_workspace
from runyard.cli.output import fmt_size


@cli.command()
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="JSON list of {path, size}.")
@with_workspace
def artifacts(ws: Any, run_id: str, as_json: bool) -> None:
    """List a run's stored files (outputs/ and logs/)."""
    items = ws.list_artifacts(run_id)
    if as_json:
        from runyard.cli.output import to_json

        click.echo(to_json([{"path": a.path, "size": a.size} for a in items]))
        return
    if not items:
        click.echo("no artifacts", err=True)
    for a in items:
        click.echo(f"{fmt_size(a.size):>10}  {a.path}")


@cli.command()
@click.argument("run_id")
@click.argument("path", required=False)
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
def download(ws: Any, run_id: str, path: str | None, dest: str) -> None:
    """Download a run's artifacts (all, or those at or under PATH) into a folder."""
    files = ws.download(run_id, dest, path)
    click.echo(f"downloaded {len(files)} file(s) to {dest}", err=True)
