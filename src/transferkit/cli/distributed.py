"""``transferkit embed`` and the options that take ``predict``, ``embed`` and ``fit`` onto Ray (``--workers``...).
``fit --device`` is a declared setting (:class:`~transferkit.config.FitConfig`); ``predict`` and ``embed`` take
:data:`Device`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from transferkit.cli.app import Quiet, TextCol, err, friendly

Workers = Annotated[
    int | None,
    typer.Option(
        help="Run on Ray with this many workers (a local cluster unless --ray-address); leave out to run here."
    ),
]
RayAddress = Annotated[
    str | None,
    typer.Option(help="Join a running Ray cluster: auto (this machine's) or ray://host:port (needs --workers)."),
]
Device = Annotated[str, typer.Option(help="auto (a CUDA GPU where torch sees one, else the CPU) | cpu | cuda.")]
CpusPerWorker = Annotated[
    int, typer.Option(help="CPUs (and torch threads) per Ray worker; a local cluster gets workers x this many.")
]
ShardRows = Annotated[
    int,
    typer.Option(help="Rows per shard: the unit of work and of resuming (a rerun skips the shards already written)."),
]


def on_ray_requested(workers: int | None, ray_address: str | None) -> bool:
    """Whether to run on Ray; ``--ray-address`` alone is refused (how many workers?), before any heavy import."""
    from transferkit.distributed.cluster import check_workers  # imports no Ray

    check_workers(workers, ray_address)
    return workers is not None


def run_batch(kind: str, model, data, output: Path, **options) -> None:
    """Run a sharded predict / embed job and say where it went (used by ``predict --workers`` and ``embed``)."""
    from transferkit.distributed.batch import run_sharded

    try:
        rows = run_sharded(kind, model, data, output, **options)
    except KeyboardInterrupt:
        err.print("interrupted; the finished shards are kept: run the same command again to resume")
        raise typer.Exit(130) from None
    what = "predictions" if kind == "predict" else "embeddings"
    err.print(f"wrote {rows} {what} to {output}", highlight=False, markup=False, soft_wrap=True)


# Registered by transferkit.cli after the other commands, so --help lists it after predict.
@friendly
def embed(
    backbone: Annotated[str, typer.Argument(help="Backbone: catalog name (`transferkit models`) or model folder.")],
    data: Annotated[str, typer.Argument(help="CSV / TSV / JSONL / Parquet file, or a folder of them (shards).")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Parquet file to write, or a folder (no suffix) of Parquet shards.")
    ],
    text_col: TextCol = None,
    max_length: Annotated[int, typer.Option(help="Tokens kept per text.")] = 128,
    workers: Workers = None,
    ray_address: RayAddress = None,
    cpus_per_worker: CpusPerWorker = 1,
    device: Device = "auto",
    shard_rows: ShardRows = 10_000,
    use_cache: Annotated[bool, typer.Option(help="Read and write the embedding cache.")] = True,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
    quiet: Quiet = False,
) -> None:
    """Frozen features of every row: the input table plus an `embedding` column.

    A list of floats per row, in input order, written shard by shard (an interrupted run resumes where it stopped).
    """
    on_ray_requested(workers, ray_address)
    run_batch(
        "embed", backbone, data, output, text_col=text_col, overwrite=overwrite, workers=workers,
        ray_address=ray_address, cpus_per_worker=cpus_per_worker, device=device, shard_rows=shard_rows,
        use_cache=use_cache, max_length=max_length, quiet=quiet,
    )  # fmt: skip
