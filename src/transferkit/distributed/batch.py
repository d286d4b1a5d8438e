"""Sharded, resumable batch jobs: ``predict`` with a saved model and ``embed`` with a frozen backbone, in this
process or on Ray Data's actor pool (each actor loads the model once and works through whole shards: it reads
its rows from the input, computes, and writes its result shard atomically; the driver only hands out ranges).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from transferkit.artifacts import load_model
from transferkit.backbones import create_backbone
from transferkit.cache import embed
from transferkit.data import load_inputs
from transferkit.devices import place, resolve_device
from transferkit.distributed.cluster import DistributedError, check_workers, ray_cluster
from transferkit.distributed.predictions import prediction_table
from transferkit.distributed.shards import (
    Shard,
    ShardOutput,
    fingerprint,
    input_files,
    plan_shards,
    read_shard,
    write_shard,
)
from transferkit.errors import DataError, TransferKitError
from transferkit.export.runtime import ExportedModel, is_exported
from transferkit.progress import progress_bar, say
from transferkit.settings import default_cache_dir

DEFAULT_SHARD_ROWS = 10_000


def load_predictor(path: str | Path, cache_dir: str | None = None, threads: int | None = None) -> Any:
    """A PyTorch model folder, or an exported one (which runs without torch, on ``threads`` threads)."""
    return ExportedModel(path, threads=threads) if is_exported(path) else load_model(path, cache_dir=cache_dir)


class ShardWorker:
    """Loads the model (``predict``) or backbone (``embed``) once, then turns shards into result shards.

    Args:
        job: Plain values (sent to Ray actors): ``kind``, ``model``, ``column``, ``modality``, ``proba``,
            ``cache_dir``, ``use_cache``, ``threads``, ``device``, ``max_length``, ``folder``, ``suffix``.
    """

    def __init__(self, job: dict[str, Any]) -> None:
        self.job = job
        if job.get("threads"):
            torch.set_num_threads(int(job["threads"]))  # one torch (and ONNX Runtime) thread per CPU given
        if job["kind"] == "predict":
            self.model = load_predictor(job["model"], job["cache_dir"], job.get("threads"))
        else:
            self.model = create_backbone(job["model"], max_length=job["max_length"])
        place(self.model, job.get("device", "cpu"))

    def process(self, shard: Shard) -> int:
        """Read, compute and write one shard; returns its rows."""
        frame = read_shard(shard)
        inputs, frame, _ = load_inputs(frame, text_col=self.job["column"], modality=self.job["modality"])
        if self.job["kind"] == "predict":
            result = prediction_table(self.model, frame, inputs, proba=self.job["proba"])
        else:
            vectors = embed(self.model, inputs, cache_dir=self.job["cache_dir"], use_cache=self.job["use_cache"],
                            quiet=True)  # fmt: skip
            result = frame.assign(embedding=list(vectors.astype(np.float32)))
        write_shard(result, self.job["folder"], self.job["suffix"], shard.index)
        return len(result)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        """Ray Data's entry: a batch of shard descriptions in, their row counts out."""
        rows = [self.process(Shard(**record)) for record in batch.to_dict("records")]
        return pd.DataFrame({"index": batch["index"].to_numpy(), "rows": rows})


def run_sharded(
    kind: str,
    model: str | Path,
    data: str | Path,
    output: Path,
    *,
    text_col: str | None = None,
    proba: bool = True,
    overwrite: bool = False,
    workers: int | None = None,
    ray_address: str | None = None,
    cpus_per_worker: int = 1,
    device: str = "auto",
    shard_rows: int = DEFAULT_SHARD_ROWS,
    cache_dir: str | None = None,
    use_cache: bool = True,
    max_length: int = 128,
    quiet: bool = False,
) -> int:
    """Predict (``kind="predict"``, ``model`` a model folder) or embed (``"embed"``, ``model`` a backbone) every
    row of ``data`` into ``output``, shard by shard, resuming an interrupted run of the same job.

    Args:
        workers: Ray workers (None: this process, no Ray).
        ray_address: ``auto`` or ``ray://host:port`` to join a cluster (None: a local one with ``workers`` CPUs).
        shard_rows: Rows per shard: the unit of work, of memory per worker, and of what a rerun skips.

    Returns:
        Rows written.

    Raises:
        TransferKitError: Bad input, settings, or cluster (one line).
    """
    check_workers(workers, ray_address)
    if cpus_per_worker < 1:
        raise DistributedError(f"--cpus-per-worker must be >= 1, got {cpus_per_worker}")
    device = resolve_device(device)
    output = Path(output)
    if output.exists() and not overwrite:
        raise DataError(f"output {str(output)!r} already exists; pass --overwrite to replace it")
    files = input_files(data)
    if any(f.resolve() == output.resolve() for f in files):
        raise DataError("output is the input file; write to a new file (the input is never modified)")
    if kind == "embed" and output.suffix.lower() not in ("", ".parquet"):
        raise DataError(f"embed writes Parquet (a list column of floats): use -o {output.stem}.parquet or a folder")
    shards = plan_shards(files, shard_rows)
    column, modality = _columns(kind, model, shards[0], text_col, cache_dir)
    job = {
        "kind": kind, "model": str(Path(model).resolve()) if kind == "predict" else str(model), "column": column,
        "modality": modality, "proba": proba, "max_length": max_length, "shard_rows": shard_rows,
        "inputs": fingerprint(files),
    }  # fmt: skip
    sink = ShardOutput(output.absolute(), job)
    done = sink.resume()
    pending = [shard for shard in shards if shard.index not in done]
    if done:
        say(f"resuming: {len(done)} of {len(shards)} shards already written", quiet=quiet)
    work = {
        **job, **sink.target(), "cache_dir": str(Path(cache_dir or default_cache_dir()).absolute()),
        "use_cache": use_cache, "threads": cpus_per_worker if workers else None, "device": device,
    }  # fmt: skip
    with progress_bar("predicting" if kind == "predict" else "embedding", sum(s.rows for s in pending),
                      quiet=quiet) as advance:  # fmt: skip
        if pending and workers is None:
            worker = ShardWorker(work)
            for shard in pending:
                advance(worker.process(shard))
        elif pending:
            _run_on_ray(work, pending, advance, workers, ray_address, cpus_per_worker, device)
    return sink.finish(len(shards))


def _columns(kind: str, model: str | Path, first: Shard, text_col: str | None, cache_dir: str | None):
    """The input column and modality, settled once on the first shard so every worker reads the same."""
    remembered, modality = None, None
    if kind == "predict":
        fitted = load_predictor(model, cache_dir)
        remembered, modality = fitted.data_info.get("text_col"), fitted.modality
    frame = read_shard(first)
    if text_col is None and remembered in frame.columns:
        text_col = remembered
    _, _, column = load_inputs(frame, text_col=text_col, modality=modality)
    return column, modality


def _run_on_ray(work: dict, pending: list[Shard], advance, workers: int, address, cpus: int, device: str) -> None:
    with ray_cluster(workers, address, cpus_per_worker=cpus) as ray:
        descriptions = ray.data.from_items([s.as_dict() for s in pending], override_num_blocks=len(pending))
        results = descriptions.map_batches(
            ShardWorker,
            fn_constructor_kwargs={"job": work},
            batch_size=1,
            batch_format="pandas",
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=cpus,
            num_gpus=1 if device == "cuda" else 0,
        )
        try:
            for batch in results.iter_batches(batch_size=None, batch_format="pandas"):
                advance(int(batch["rows"].sum()))
        except TransferKitError:
            raise
        except Exception as error:  # Ray wraps what failed in a worker; surface the user's error as one line
            raise user_error(error) from None


def user_error(error: BaseException) -> TransferKitError:
    """The user's error inside what Ray raised (a worker's exception is wrapped, sometimes twice), or one line
    saying the job failed and how to resume."""
    pending, seen = [error], set()
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, TransferKitError):
            return type(current)(str(current))
        failures = getattr(current, "worker_failures", None) or {}
        pending += [current.__cause__, getattr(current, "cause", None), *failures.values()]
    lines = [line for line in str(error).splitlines() if line.strip()]
    return DistributedError(
        f"the Ray job failed ({type(error).__name__}: {lines[-1] if lines else ''}); "
        "run the command again: finished shards are kept"
    )
