"""``runyard serve MODEL``: serve a registered model in the foreground."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from runyard.cli.main import cli, with_workspace


def serving_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options ``serve`` and ``endpoint create`` share."""
    options = [
        click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind."),
        click.option("--workers", type=int, default=1, show_default=True, help="Processes."),
        click.option(
            "--auth",
            "api_key",
            envvar="RUNYARD_SERVE_KEY",
            help="API key clients must send (Authorization: Bearer KEY); required beyond "
            "127.0.0.1. Also read from $RUNYARD_SERVE_KEY.",
        ),
        click.option(
            "--score",
            type=click.Path(dir_okay=False, exists=True),
            help="Scoring script with init() and run(raw_data) (Azure ML's contract).",
        ),
        click.option(
            "--max-batch-size",
            type=int,
            default=1,
            show_default=True,
            help="Dynamic batching of no-code models: rows per call (1: off).",
        ),
        click.option(
            "--max-delay-ms",
            type=float,
            default=0.0,
            show_default=True,
            help="Dynamic batching: longest wait for more requests (0: batch what queued "
            "while the model was busy).",
        ),
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn


@cli.command()
@click.argument("ref", metavar="NAME[@VERSION|@ALIAS]")
@click.option("--port", type=int, default=8080, show_default=True, help="Port (0: any free).")
@serving_options
@with_workspace
def serve(
    ws: Any,
    ref: str,
    port: int,
    host: str,
    workers: int,
    api_key: str | None,
    score: str | None,
    max_batch_size: int,
    max_delay_ms: float,
) -> None:
    """Serve a model version over HTTP until Ctrl-C (v2 inference protocol and /score)."""
    from pathlib import Path

    from runyard.serving.app import key_digest
    from runyard.serving.server import ServeOptions, check_exposure, serve
    from runyard.serving.state import Deployment

    options = ServeOptions(
        host=host,
        port=port,
        workers=workers,
        key_sha256=None if not api_key else key_digest(api_key),
        max_batch_size=max_batch_size,
        max_delay_ms=max_delay_ms,
    )
    check_exposure(options)
    mv = ws.models.get(ref)
    deployment = Deployment(
        name=mv.name,
        version=mv.version,
        model_dir=ws.models.local_dir(mv),
        framework=mv.framework,
        score=None if score is None else Path(score).resolve(),
    )

    def listening(bound: int) -> None:
        shown = f"[{host}]" if ":" in host else host
        click.echo(
            f"serving {mv.ref} at http://{shown}:{bound} "
            f"(POST /v2/models/{mv.name}/infer or /score; Ctrl-C stops)",
            err=True,
        )

    try:
        serve([deployment], options, on_listening=listening)
    except KeyboardInterrupt:  # uvicorn has shut down gracefully, then re-raised Ctrl-C
        click.echo("stopped", err=True)
