"""``fit --workers N``: feature extraction with the embedding spread over a Ray Data actor pool (the head is fit
here, on the gathered features), or fine-tuning / contrastive training data-parallel through Ray Train's
TorchTrainer (torch DDP: gloo on CPUs, NCCL on GPUs), worker 0 writing the model folder.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from transferkit.artifacts import check_output, load_model
from transferkit.backbones import create_backbone
from transferkit.backbones.catalog import DEFAULT_BACKBONES
from transferkit.cache import EmbeddingCache, embed
from transferkit.config import FitConfig
from transferkit.data import load_labeled
from transferkit.devices import place, resolve_device
from transferkit.distributed.batch import user_error
from transferkit.distributed.cluster import DistributedError, check_workers, ray_cluster
from transferkit.errors import TransferKitError
from transferkit.progress import progress_bar, say
from transferkit.settings import default_cache_dir
from transferkit.training import parallel

DATA_PARALLEL = ("finetune", "contrastive")
_SETTING_NAMES = ("max_length", "cache_dir", "use_cache", "quiet")


def fit_on_ray(
    fit: Callable[..., Any],
    data: str | Path | pd.DataFrame,
    *,
    workers: int,
    ray_address: str | None = None,
    cpus_per_worker: int = 1,
    device: str = "auto",
    **arguments: Any,
) -> Any:
    """Run ``fit(data, **arguments)`` (:func:`transferkit.api.fit`) with its heavy part on Ray.

    Args:
        fit: The single-process fit, passed in (it lives in the layer above) and run by each training worker.
        workers: Ray workers: embedding actors for feature extraction, DDP ranks for fine-tuning.
        device: ``auto``, ``cpu`` or ``cuda``, resolved on this machine: with ``cuda`` each worker gets a GPU
            (``ray.train.torch.get_device()``) and DDP runs over NCCL; on CPUs over gloo.
        arguments: ``fit``'s keyword arguments (``output``, columns, settings...).

    Returns:
        The fitted model (for data-parallel training, as worker 0 saved it).

    Raises:
        TransferKitError: A strategy that does not run on Ray, no output folder, or Ray trouble (one line).
    """
    check_workers(workers)
    device = resolve_device(device)
    arguments = {**arguments, "device": device}
    strategy = str(arguments.get("strategy") or FitConfig().strategy).replace("_", "-")
    if strategy == "feature-extraction":
        _embed_for_fit(data, arguments, workers, ray_address, cpus_per_worker, device)
        return fit(data, **arguments)
    if strategy not in DATA_PARALLEL:
        raise DistributedError(
            f"--workers runs feature-extraction, finetune and contrastive; {strategy!r} runs in one process "
            "(leave --workers out)"
        )
    if arguments.get("output") is None:
        raise DistributedError("fit --workers with a strategy that trains the body needs --output (worker 0 saves)")
    output = check_output(arguments["output"], overwrite=arguments.get("overwrite", False)).absolute()
    cache_dir = str(Path(arguments.get("cache_dir") or default_cache_dir()).absolute())  # this machine's, if shared
    arguments = {**arguments, **_absolute(data, arguments), "output": str(output), "cache_dir": cache_dir}
    storage = Path(tempfile.mkdtemp(prefix="transferkit-ray-train-"))
    start = time.perf_counter()
    try:
        with ray_cluster(workers, ray_address, cpus_per_worker=cpus_per_worker) as ray:
            _train(ray, fit, arguments, workers, cpus_per_worker, storage)
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    model = load_model(output)
    model.info["fit_seconds_on_ray"] = round(time.perf_counter() - start, 2)
    return model


def _absolute(data: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Paths as seen from any worker's working folder (data, test file, backbone folder)."""
    fixed = {"data": str(Path(data).absolute()) if isinstance(data, str | Path) and Path(data).exists() else data}
    for key in ("test", "backbone"):
        value = arguments.get(key)
        if isinstance(value, str) and Path(value).exists():
            fixed[key] = str(Path(value).absolute())
    return fixed


def _train(ray: Any, fit, arguments: dict, workers: int, cpus: int, storage: Path) -> None:
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    gpus = arguments["device"] == "cuda"  # one GPU per worker, and NCCL between them
    trainer = TorchTrainer(
        train_worker,
        train_loop_config={"fit": fit, "arguments": arguments, "threads": cpus},
        torch_config=TorchConfig(backend="nccl" if gpus else "gloo"),
        scaling_config=ScalingConfig(
            num_workers=workers, use_gpu=gpus, resources_per_worker={"CPU": cpus, **({"GPU": 1} if gpus else {})}
        ),
        run_config=RunConfig(storage_path=str(storage), name="fit"),
    )
    try:
        trainer.fit()
    except TransferKitError:
        raise
    except Exception as error:  # Ray wraps what failed in a worker; surface the user's error as one line
        raise user_error(error) from None


def train_worker(config: dict[str, Any]) -> None:
    """One TorchTrainer worker: the whole single-process fit, data-parallel inside; only worker 0 saves and talks.
    On GPUs, ``device="cuda"`` means the GPU Ray gave this worker (made the current CUDA device here)."""
    import ray.train
    import ray.train.torch

    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.set_num_threads(int(config["threads"]))  # one thread per CPU this worker was given
    arguments = dict(config["arguments"])
    if arguments["device"] == "cuda":
        torch.cuda.set_device(ray.train.torch.get_device())
    data = arguments.pop("data")
    if rank != 0:
        arguments.update(output=None, quiet=True)
    with parallel.data_parallel(rank, world):
        config["fit"](data, **arguments)


def _embed_for_fit(data: str, arguments: dict, workers: int, address, cpus: int, device: str) -> None:
    """Embed every input of the fit (training and test data) on Ray and store the vectors in this machine's
    embedding cache, where the fit then finds them: it encodes nothing and fits the head on the gathered features."""
    config = FitConfig.from_settings(**{k: v for k, v in arguments.items() if k in _SETTING_NAMES})
    columns = {k: arguments.get(k) for k in ("text_col", "label_col", "task", "modality")}
    labeled = load_labeled(data, **columns, label_sep=arguments.get("label_sep", "|"),
                           on_bad_file=arguments.get("on_bad_file", "fail"))  # fmt: skip
    inputs = list(labeled.inputs)
    if arguments.get("test") is not None:
        inputs += load_labeled(arguments["test"], **{**columns, "text_col": labeled.text_col}, min_classes=1).inputs
    name = arguments.get("backbone") or DEFAULT_BACKBONES[labeled.extra.get("modality", "text")]
    if name == "auto":
        raise DistributedError("fit --workers needs a named --backbone (auto ranks the candidates in one process)")
    backbone = create_backbone(name, max_length=config.max_length)
    cache_dir = str(Path(config.cache_dir or default_cache_dir()).absolute())
    if not config.use_cache:
        raise DistributedError("fit --workers gathers the embeddings in the embedding cache; drop --no-use-cache")
    cache = EmbeddingCache(backbone, cache_dir)
    keys = [backbone.input_key(item) for item in inputs]
    found = cache.lookup(keys)
    first = {}
    for position, key in enumerate(keys):
        if key not in found:
            first.setdefault(key, position)
    if not first:
        return
    say(f"embedding {len(first)} inputs on {workers} Ray workers", quiet=config.quiet)
    rows = [{"position": p, "input": inputs[p]} for p in first.values()]
    job = {"backbone": name, "max_length": config.max_length, "threads": cpus, "cache_dir": cache_dir, "device": device}
    with (
        ray_cluster(workers, address, cpus_per_worker=cpus) as ray,
        progress_bar("embedding", len(rows), quiet=config.quiet) as advance,
    ):
        blocks = min(len(rows), workers * 8)
        results = ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
            EmbedRows, fn_constructor_kwargs={"job": job}, batch_size=256, batch_format="pandas",
            compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=cpus, num_gpus=1 if device == "cuda" else 0,
        )  # fmt: skip
        try:
            for batch in results.iter_batches(batch_size=None, batch_format="pandas"):
                cache.store([keys[p] for p in batch["position"]], np.stack(batch["vector"].to_list()))
                advance(len(batch))
        except TransferKitError:
            raise
        except Exception as error:
            raise user_error(error) from None


class EmbedRows:
    """A Ray Data actor: loads the backbone once, embeds batches of inputs (through its node's cache)."""

    def __init__(self, job: dict[str, Any]) -> None:
        torch.set_num_threads(int(job["threads"]))
        self.backbone = create_backbone(job["backbone"], max_length=job["max_length"])
        place(self.backbone, job["device"])
        self.cache_dir = job["cache_dir"]

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        vectors = embed(self.backbone, batch["input"].tolist(), cache_dir=self.cache_dir, quiet=True)
        return pd.DataFrame({"position": batch["position"].to_numpy(), "vector": list(vectors)})
