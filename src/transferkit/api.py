"""The Python front door: ``fit``, ``evaluate``, ``predict``, ``embed``, ``load``, ``save`` (the CLI calls exactly
these)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd

from transferkit.artifacts import atomic_folder, check_output, load_model, save_model, write_json
from transferkit.backbones import Backbone
from transferkit.backbones.catalog import DEFAULT_BACKBONES
from transferkit.config import FitConfig
from transferkit.data import LabeledData, load_inputs, load_labeled, train_test_indices
from transferkit.devices import resolve_device
from transferkit.distributed.batch import run_sharded
from transferkit.distributed.cluster import check_workers
from transferkit.distributed.training import fit_on_ray
from transferkit.errors import DataError
from transferkit.evaluation.scoring import evaluate_model, model_metrics
from transferkit.experiments.compare import compare as run_compare
from transferkit.experiments.domain import compare_domain, require_test
from transferkit.experiments.domain_report import domain_report
from transferkit.experiments.report import compare_report, model_report
from transferkit.explain import explain_examples
from transferkit.export.runtime import ExportedModel, is_exported
from transferkit.model import TransferModel
from transferkit.progress import say
from transferkit.selection.ranking import rank as run_rank
from transferkit.strategies.fit import fit_model


def fit(
    data: str | Path | pd.DataFrame | LabeledData,
    *,
    text_col: str | None = None,
    label_col: str | None = None,
    task: str | None = None,
    label_sep: str = "|",
    test: str | Path | pd.DataFrame | None = None,
    test_size: float = 0.2,
    backbone: str | dict | Backbone | None = None,
    output: str | Path | None = None,
    overwrite: bool = False,
    modality: str | None = None,
    on_bad_file: str = "fail",
    unlabeled: str | Path | pd.DataFrame | list | None = None,
    workers: int | None = None,
    ray_address: str | None = None,
    cpus_per_worker: int = 1,
    device: str = "auto",
    **settings: Any,
) -> TransferModel:
    """Read labeled data, hold out a test set, adapt a backbone, evaluate, and optionally save.

    Args:
        data: A CSV / TSV / JSONL / Parquet file, a built-in data set name ("spam-assassin"), or a DataFrame.
        text_col, label_col: Columns to use (detected when None).
        task: "classification", "multilabel" or "regression" (inferred when None).
        test: A separate test file; when None, ``test_size`` of the data is held out (stratified, seeded).
        backbone: Catalog name, Hugging Face folder or hub id (default: the bundled MiniLM).
        output: Model folder to write (checked before training starts).
        modality: "text" or "image"; detected from the data when None (a folder of class sub-folders of images,
            or a table with a column of image paths, which must lie inside the table's folder).
        on_bad_file: Missing or unreadable images: "fail" (one error naming them) or "skip" (leave them out).
        unlabeled: Unlabeled inputs of the domain the model will serve (a table without labels, a folder of
            files, a built-in data set name, a DataFrame, or a list of inputs): the model is adapted to them
            with the ``adapt`` setting (default "auto": measured, else none; see
            :mod:`transferkit.strategies.adapt`). The held-out evaluation stays on the labeled data unless
            ``test`` is target data.
        workers: Run on Ray with this many workers, as ``transferkit fit --workers`` does: feature extraction
            embeds on a Ray Data actor pool, ``finetune`` and ``contrastive`` train data-parallel (DDP, worker 0
            writing ``output``, which they need). None: this process; Ray is not imported.
        ray_address: ``auto`` or ``ray://host:port`` to join a running cluster (None: a local one, with
            ``workers * cpus_per_worker`` CPUs, stopped at the end).
        cpus_per_worker: CPUs (and torch threads) per Ray worker.
        device: Where training and embedding run: ``auto`` (a CUDA GPU where torch sees one, else the CPU),
            ``cpu`` or ``cuda`` (one GPU per Ray worker). The fitted model's weights end on the CPU.
        **settings: :class:`~transferkit.config.FitConfig` fields (strategy, unfreeze_layers, seed, ...) and the
            strategies' own settings (time_budget, ...).

    Returns:
        The fitted model; ``model.metrics`` holds the held-out evaluation.

    Raises:
        TransferKitError: Bad data or settings, ``device="cuda"`` without a CUDA GPU, or Ray trouble (one line).
    """
    config = FitConfig.from_settings(device=device, **settings)
    check_workers(workers, ray_address)
    if workers is not None:  # fit_on_ray calls this function again, without workers, in each training worker
        arguments = dict(text_col=text_col, label_col=label_col, task=task, label_sep=label_sep, test=test,
                         test_size=test_size, backbone=backbone, output=output, overwrite=overwrite, modality=modality,
                         on_bad_file=on_bad_file, unlabeled=unlabeled, **settings)  # fmt: skip
        return fit_on_ray(fit, data, workers=workers, ray_address=ray_address, cpus_per_worker=cpus_per_worker,
                          device=device, **arguments)  # fmt: skip
    resolve_device(config.device)  # cuda without a GPU fails here, before any data is read
    if output is not None:
        check_output(output, overwrite=overwrite)
    labeled, held_out = _load_with_test(
        data, test, text_col, label_col, task, label_sep, modality=modality, on_bad_file=on_bad_file
    )
    if held_out is not None:
        train_inputs, train_y, test_inputs, test_y = labeled.inputs, labeled.y, held_out.inputs, held_out.y
    elif test_size > 0:
        if not 0 < test_size < 1:
            raise DataError(f"test_size must be in (0, 1), got {test_size}")
        train, held = train_test_indices(labeled.y, test_size=test_size, task=labeled.task, seed=config.seed)
        train_inputs, train_y = [labeled.inputs[i] for i in train], [labeled.y[i] for i in train]
        test_inputs, test_y = [labeled.inputs[i] for i in held], [labeled.y[i] for i in held]
    else:
        train_inputs, train_y, test_inputs, test_y = labeled.inputs, labeled.y, [], []
    say(
        f"{labeled.task}: {len(train_inputs)} training and {len(test_inputs)} test examples "
        f"(input column {labeled.text_col!r}, label column {labeled.label_col!r})",
        quiet=config.quiet,
    )
    if backbone is None:
        backbone = DEFAULT_BACKBONES[labeled.extra.get("modality", "text")]
    target = _load_unlabeled(unlabeled, labeled, on_bad_file)
    start = time.perf_counter()
    model = fit_model(train_inputs, train_y, task=labeled.task, backbone=backbone, config=config, unlabeled=target)
    model.info["fit_seconds"] = round(time.perf_counter() - start, 2)
    model.data_info = {
        "text_col": labeled.text_col,
        "label_col": labeled.label_col,
        "source": labeled.source,
        "n_train": len(train_inputs),
        "n_test": len(test_inputs),
        # How to read the held-out part again (export measures int8 on it): the test file, or the split.
        **({"data_path": str(Path(data).resolve())} if isinstance(data, str | Path) and Path(data).exists() else {}),
        **({"test": str(Path(test).resolve())} if isinstance(test, str | Path) else {}),
        **({"test_size": test_size} if test is None and test_inputs else {}),
        **({"n_unlabeled": len(target)} if target is not None else {}),
        **({"unlabeled": str(unlabeled)} if isinstance(unlabeled, str | Path) else {}),
    }
    calibration = None
    if test_inputs:
        model.metrics, calibration = model_metrics(
            model, test_inputs, test_y, quiet=config.quiet, with_calibration=True
        )
    if output is not None:
        examples = explain_examples(model, test_inputs, test_y) if test_inputs else []  # 2 right, 2 wrong
        report = model_report(model, calibration, examples)
        save_model(model, output, overwrite=overwrite, documents={"report.html": report})
    return model


def _load_unlabeled(unlabeled: Any, labeled: LabeledData, on_bad_file: str) -> list | None:
    """The target inputs: a list as given, else read like inputs to predict on (the labeled data's input
    column when the table has it; the modality detected, so that a mismatch is reported, not misread)."""
    if unlabeled is None or isinstance(unlabeled, list):
        return unlabeled
    inputs, _, _ = load_inputs(unlabeled, remembered_col=labeled.text_col, on_bad_file=on_bad_file)
    return inputs


def _load_with_test(
    data, test, text_col, label_col, task, label_sep, modality=None, on_bad_file="fail"
) -> tuple[LabeledData, LabeledData | None]:
    """The labeled data and, when given, a test file read with the same columns, task and modality."""
    images = {"on_bad_file": on_bad_file}
    labeled = (
        data
        if isinstance(data, LabeledData)
        else load_labeled(
            data, text_col=text_col, label_col=label_col, task=task, label_sep=label_sep, modality=modality, **images
        )
    )
    if test is None:
        return labeled, None
    held_out = load_labeled(
        test, text_col=labeled.text_col, label_col=labeled.label_col, task=labeled.task, label_sep=label_sep,
        modality=labeled.extra.get("modality", "text"), **images,
    )  # fmt: skip
    return labeled, held_out


def compare(
    data: str | Path | pd.DataFrame | LabeledData,
    *,
    output: str | Path | None = None,
    overwrite: bool = False,
    text_col: str | None = None,
    label_col: str | None = None,
    task: str | None = None,
    label_sep: str = "|",
    test: str | Path | pd.DataFrame | None = None,
    modality: str | None = None,
    on_bad_file: str = "fail",
    unlabeled: str | Path | pd.DataFrame | list | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Learning curves of transfer vs from-scratch baselines on ``data``; see
    :func:`transferkit.experiments.compare.compare` for the options. With ``unlabeled`` (target-domain inputs,
    read as :func:`fit` reads them) and ``test`` (labeled target examples): source-only vs each domain adaptation
    method vs a target-supervised reference instead; see :func:`transferkit.experiments.domain.compare_domain`.
    With ``output``, writes ``report.html`` and ``compare.json`` there (all or nothing)."""
    if output is not None:
        check_output(output, overwrite=overwrite)
    if unlabeled is not None:
        require_test(test)  # before reading anything
    labeled, held_out = _load_with_test(data, test, text_col, label_col, task, label_sep, modality, on_bad_file)
    if unlabeled is not None:
        target = _load_unlabeled(unlabeled, labeled, on_bad_file)
        result, report = compare_domain(labeled, target, held_out, **options), domain_report
    else:
        result, report = run_compare(labeled, test=held_out, **options), compare_report
    if output is not None:
        with atomic_folder(Path(output).expanduser()) as folder:
            write_json(folder / "compare.json", result)
            (folder / "report.html").write_text(report(result), encoding="utf-8")
    return result


def evaluate(
    model: TransferModel | ExportedModel | str | Path,
    data: str | Path | pd.DataFrame,
    *,
    text_col: str | None = None,
    label_col: str | None = None,
    label_sep: str = "|",
    quiet: bool = True,
) -> dict[str, Any]:
    """Metrics of a fitted model (or a model folder, PyTorch or exported) on labeled data."""
    if isinstance(model, str | Path):
        model = load(model)
    return evaluate_model(model, data, text_col=text_col, label_col=label_col, label_sep=label_sep, quiet=quiet)


def predict(
    model: str | Path,
    data: str | Path,
    output: str | Path,
    *,
    workers: int | None = None,
    ray_address: str | None = None,
    cpus_per_worker: int = 1,
    device: str = "auto",
    **options: Any,
) -> int:
    """Predict every row of a table, or of a folder of tables, into ``output``, as ``transferkit predict`` does:
    the input plus ``prediction`` (and ``proba_<class>``) columns, shard by shard (a rerun after an interruption
    skips the shards already written), here or on Ray.

    Args:
        model: A model folder (PyTorch or exported).
        data: A CSV / TSV / JSONL / Parquet file, or a folder of them.
        output: A file (its suffix names the format), or a folder of Parquet shards (no suffix).
        workers, ray_address, cpus_per_worker: As for :func:`fit` (an actor pool, the model loaded once per actor).
        device: Where the model runs (``auto``, ``cpu``, ``cuda``: one GPU per Ray worker).
        **options: ``text_col``, ``proba``, ``overwrite``, ``shard_rows``, ``cache_dir``, ``use_cache``, ``quiet``.

    Returns:
        The number of rows written.
    """
    return run_sharded("predict", model, data, Path(output), workers=workers, ray_address=ray_address,
                       cpus_per_worker=cpus_per_worker, device=device, **options)  # fmt: skip


def embed(backbone: str, data: str | Path, output: str | Path, **options: Any) -> int:
    """Frozen features of every row, as ``transferkit embed`` does: the input table plus an ``embedding`` column
    (a list of floats), written as Parquet. ``backbone`` is a catalog name or model folder; ``max_length`` and the
    other options (``workers``, ``ray_address``, ``cpus_per_worker``, ``device``...) are :func:`predict`'s.

    Returns:
        The number of rows written.
    """
    return run_sharded("embed", backbone, data, Path(output), **options)


def load(path: str | Path) -> TransferModel | ExportedModel:
    """Load a model folder written by :func:`fit` or :func:`save`, or an exported folder (``transferkit
    export``), which runs in ONNX Runtime and has the same prediction methods."""
    return ExportedModel(path) if is_exported(path) else load_model(path)


def save(model: TransferModel, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``model`` to a model folder (safetensors + JSON)."""
    return save_model(model, path, overwrite=overwrite)


def rank(
    data: str | Path | pd.DataFrame | LabeledData,
    *,
    text_col: str | None = None,
    label_col: str | None = None,
    task: str | None = None,
    label_sep: str = "|",
    modality: str | None = None,
    on_bad_file: str = "fail",
    **options: Any,
) -> dict[str, Any]:
    """Rank candidate backbones for ``data`` by transferability (LogME by default), before any training.

    Args:
        data: As for :func:`fit`: a data file, a folder of class sub-folders of images or audio clips, a
            built-in data set name, a DataFrame or loaded data.
        text_col, label_col: Columns to use (detected when None).
        task: "classification", "multilabel" or "regression" (inferred when None).
        label_sep: Separator between labels of one row, for multi-label data.
        modality: "text", "image" or "audio"; detected from the data when None, as :func:`fit` does, so that
            image or audio files are ranked by the candidates of their modality, not by text encoders.
        on_bad_file: Missing or unreadable image/audio files: "fail" (one error naming them) or "skip".
        **options: Options of :func:`transferkit.selection.ranking.rank` (candidates, score, rounds, ...).

    Returns:
        The ranking, as :func:`transferkit.selection.ranking.rank` returns it.
    """
    labeled, _ = _load_with_test(data, None, text_col, label_col, task, label_sep, modality, on_bad_file)
    modality = labeled.extra.get("modality", modality or "text")  # loaded data may carry no modality of its own
    return run_rank(labeled.inputs, labeled.y, task=labeled.task, modality=modality, **options)
