"""``runyard`` commands. Each translates runyard errors once: ``error: <message>`` on stderr
and the error's exit code; no tracebacks for user mistakes."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from runyard.errors import RunyardError

F = TypeVar("F", bound=Callable[..., Any])


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RunyardError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--workspace",
    "-w",
    type=click.Path(file_okay=False),
    envvar="RUNYARD_WORKSPACE",
    help="Workspace folder (default: $RUNYARD_WORKSPACE, else ~/.runyard).",
)
@click.version_option(package_name="runyard")
@click.pass_context
def cli(ctx: click.Context, workspace: str | None) -> None:
    """runyard: run training scripts as tracked, reproducible runs."""
    ctx.obj = {"workspace": workspace}


def with_workspace(fn: F) -> F:
    """Open the workspace for the command as ``ws`` and close it afterwards."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from runyard.client import Workspace

        ctx = click.get_current_context()
        ws = Workspace.open(ctx.obj["workspace"])
        try:
            return fn(ws, *args, **kwargs)
        finally:
            ws.close()

    return wrapper  # type: ignore[return-value]


def main() -> None:
    from runyard.cli import artifacts, env, runs, show, sweep  # noqa: F401  (registers commands)
    from runyard.cli import endpoint as _endpoint  # noqa: F401
    from runyard.cli import model as _model  # noqa: F401
    from runyard.cli import serve as _serve  # noqa: F401

    cli(prog_name="runyard")
