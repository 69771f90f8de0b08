"""Endpoints: ``runyard endpoint create|ls|show|logs|traffic|delete``."""

from __future__ import annotations

import time
from typing import Any

import click

from runyard.cli.main import cli, with_workspace
from runyard.cli.output import fmt_time, to_json
from runyard.cli.serve import serving_options
from runyard.records import Endpoint

_STYLE = {"Running": "green", "Failed": "red", "Starting": "cyan", "Stopped": "yellow"}


def endpoint_dict(ep: Endpoint) -> dict[str, Any]:
    config = {k: v for k, v in ep.config.items() if k not in ("key_sha256", "serving")}
    return {
        "name": ep.name,
        "status": ep.status.value,
        "url": ep.url,
        "traffic": [{"model": r.ref, "weight": r.weight} for r in ep.traffic],
        "auth": ep.config.get("key_sha256") is not None,
        "config": config,
        "pid": ep.pid,
        "port": ep.port,
        "hostname": ep.hostname,
        "error": ep.error,
        "created_at": ep.created_at,
        "updated_at": ep.updated_at,
    }


def _traffic(ep: Endpoint) -> str:
    return " ".join(f"{r.ref}={r.weight}" for r in ep.traffic)


@cli.group()
def endpoint() -> None:
    """Endpoints: model versions served by background processes, with a traffic split."""


@endpoint.command()
@click.argument("name")
@click.option(
    "--model",
    "-m",
    "models",
    multiple=True,
    required=True,
    metavar="NAME@VERSION[=WEIGHT]",
    help="A version to serve and its share of traffic (repeatable; default weight 100).",
)
@click.option("--port", type=int, help="Port (default: any free port).")
@click.option("--no-wait", is_flag=True, help="Return at once instead of when it answers.")
@serving_options
@with_workspace
def create(
    ws: Any,
    name: str,
    models: tuple[str, ...],
    port: int | None,
    no_wait: bool,
    host: str,
    workers: int,
    api_key: str | None,
    score: str | None,
    max_batch_size: int,
    max_delay_ms: float,
) -> None:
    """Deploy model versions as endpoint NAME, served by a background process."""
    from runyard.serving.app import key_digest
    from runyard.serving.endpoints import parse_traffic

    ep = ws.endpoints.create(
        name,
        parse_traffic(models),
        score=score,
        host=host,
        port=port,
        workers=workers,
        key_sha256=None if not api_key else key_digest(api_key),
        max_batch_size=max_batch_size,
        max_delay_ms=max_delay_ms,
        wait=None if no_wait else 120.0,
    )
    where = f" at {ep.url}" if ep.url else ""
    click.echo(f"endpoint {ep.name} {ep.status.value.lower()}{where}: {_traffic(ep)}")


@endpoint.command("ls")
@click.option("--json", "as_json", is_flag=True, help="JSON list of endpoints.")
@with_workspace
def ls(ws: Any, as_json: bool) -> None:
    """List endpoints."""
    endpoints = ws.endpoints.list()
    if as_json:
        click.echo(to_json([endpoint_dict(e) for e in endpoints]))
        return
    if not endpoints:
        click.echo("no endpoints", err=True)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for col in ("NAME", "STATUS", "URL", "TRAFFIC", "CREATED"):
        table.add_column(col, no_wrap=True)
    for e in endpoints:
        style = _STYLE.get(e.status.value, "")
        table.add_row(
            e.name,
            f"[{style}]{e.status.value}[/]",
            e.url or "",
            _traffic(e),
            fmt_time(e.created_at),
        )
    console = Console()
    if not console.is_terminal:
        console.width = 250
    console.print(table)


@endpoint.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Everything as JSON.")
@with_workspace
def show(ws: Any, name: str, as_json: bool) -> None:
    """Show an endpoint: status, URL, traffic, options, process."""
    data = endpoint_dict(ws.endpoints.get(name))
    if as_json:
        click.echo(to_json(data))
        return
    lines = [f"endpoint {data['name']}   status {data['status']}"]
    rows = [
        ("url", data["url"]),
        ("traffic", " ".join(f"{t['model']}={t['weight']}" for t in data["traffic"])),
        ("auth", "API key" if data["auth"] else "none (loopback only)"),
        ("workers", data["config"].get("workers")),
        ("batching", _batching(data["config"])),
        ("score", data["config"].get("score")),
        ("process", f"pid {data['pid']} on {data['hostname']}" if data["pid"] else None),
        ("created", fmt_time(data["created_at"])),
        ("error", data["error"]),
    ]
    lines += [f"  {label:<10} {value}" for label, value in rows if value]
    click.echo("\n".join(lines))


def _batching(config: dict[str, Any]) -> str | None:
    size = int(config.get("max_batch_size") or 1)
    if size <= 1:
        return "off"
    return f"up to {size} rows, {config.get('max_delay_ms')} ms"


@endpoint.command()
@click.argument("name")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines (Ctrl-C stops).")
@click.option("--tail", "-n", type=int, help="Only the last N lines.")
@with_workspace
def logs(ws: Any, name: str, follow: bool, tail: int | None) -> None:
    """Print an endpoint server's log."""
    path = ws.endpoints.log_path(name)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        text = ""
    lines = text.splitlines(keepends=True)
    click.echo("".join(lines[-tail:] if tail else lines), nl=False)
    if not follow:
        return
    offset = len(text.encode())
    try:
        while True:
            time.sleep(0.5)
            with path.open("rb") as f:
                f.seek(offset)
                chunk = f.read()
            if chunk:
                offset += len(chunk)
                click.echo(chunk.decode(errors="replace"), nl=False)
    except KeyboardInterrupt:
        pass


@endpoint.command()
@click.argument("name")
@click.argument("split", nargs=-1, required=True, metavar="NAME@VERSION=WEIGHT...")
@with_workspace
def traffic(ws: Any, name: str, split: tuple[str, ...]) -> None:
    """Change which versions an endpoint serves and their shares (blue/green, canary)."""
    from runyard.serving.endpoints import parse_traffic

    ep = ws.endpoints.set_traffic(name, parse_traffic(split))
    click.echo(f"endpoint {ep.name}: {_traffic(ep)}")


@endpoint.command()
@click.argument("name")
@with_workspace
def delete(ws: Any, name: str) -> None:
    """Stop an endpoint's server and delete the endpoint."""
    ws.endpoints.delete(name)
    click.echo(f"deleted endpoint {name}")
