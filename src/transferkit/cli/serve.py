"""``transferkit serve``: model folders behind an HTTP service (Open Inference Protocol v2 and ``/predict``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from transferkit.cli.app import app, err, friendly


@app.command()
@friendly
def serve(
    models: Annotated[
        list[Path],
        typer.Argument(help="Model folders (`transferkit fit` or `transferkit export`); URLs use their names."),
    ],
    host: Annotated[str, typer.Option(help="Address to listen on; 0.0.0.0 exposes the models to the network.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="TCP port.")] = 8080,
    api_key_env: Annotated[
        str | None,
        typer.Option(help="Environment variable holding the API key; then every route but health needs the key."),
    ] = None,
    max_body_bytes: Annotated[int, typer.Option(help="Larger request bodies get 413.")] = 8 * 1024 * 1024,
    max_batch: Annotated[int, typer.Option(help="Most inputs per request and per batched model call.")] = 64,
    max_text_chars: Annotated[int, typer.Option(help="Longest text accepted (422 beyond).")] = 20_000,
    max_file_bytes: Annotated[int, typer.Option(help="Largest image or audio file accepted (422 beyond).")] = (
        4 * 1024 * 1024
    ),
    max_merge: Annotated[int, typer.Option(help="Dynamic batching: the most inputs merged into one model call.")] = 8,
    max_wait_ms: Annotated[
        float,
        typer.Option(
            help="Dynamic batching: wait this long for more requests after the first (0: never wait, merge what "
            "queued while the model was busy)."
        ),
    ] = 0.0,
    batching: Annotated[
        bool, typer.Option("--batching/--no-batching", help="Merge concurrent requests into one model call.")
    ] = True,
) -> None:
    """Serve models over HTTP: /v2/models/NAME/infer (Open Inference Protocol) and /v2/models/NAME/predict."""
    from transferkit.serving import ServeConfig, api_key_from_env
    from transferkit.serving import serve as serve_models

    config = ServeConfig(
        host=host, port=port, api_key=api_key_from_env(api_key_env) if api_key_env else None,
        max_body_bytes=max_body_bytes, max_batch=max_batch, max_text_chars=max_text_chars,
        max_file_bytes=max_file_bytes, max_wait_ms=max_wait_ms, max_merge=max_merge,
        batching=batching,
    )  # fmt: skip
    serve_models(models, config, announce=lambda line: err.print(line, highlight=False, markup=False, soft_wrap=True))
