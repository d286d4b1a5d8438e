"""The Python front door: ``fit``, ``evaluate``, ``load``, ``save`` (the CLI calls exactly these)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd

from transferkit.artifacts import check_output, load_model, save_model
from transferkit.backbones import Backbone
from transferkit.config import FitConfig
from transferkit.data import LabeledData, load_labeled, read_table, train_test_indices
from transferkit.errors import DataError
from transferkit.evaluation import compute_metrics
from transferkit.model import TransferModel
from transferkit.progress import say
from transferkit.strategies import fit_model


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
        **settings: :class:`~transferkit.config.FitConfig` fields (strategy, unfreeze_layers, seed, ...).

    Returns:
        The fitted model; ``model.metrics`` holds the held-out evaluation.
    """
    config = FitConfig(**settings)
    if output is not None:
        check_output(output, overwrite=overwrite)
    labeled = (
        data
        if isinstance(data, LabeledData)
        else load_labeled(data, text_col=text_col, label_col=label_col, task=task, label_sep=label_sep)
    )
    if test is not None:
        held_out = load_labeled(
            test, text_col=labeled.text_col, label_col=labeled.label_col, task=labeled.task, label_sep=label_sep
        )
        train_texts, train_y, test_texts, test_y = labeled.texts, labeled.y, held_out.texts, held_out.y
    elif test_size > 0:
        if not 0 < test_size < 1:
            raise DataError(f"test_size must be in (0, 1), got {test_size}")
        train, held = train_test_indices(labeled.y, test_size=test_size, task=labeled.task, seed=config.seed)
        train_texts, train_y = [labeled.texts[i] for i in train], [labeled.y[i] for i in train]
        test_texts, test_y = [labeled.texts[i] for i in held], [labeled.y[i] for i in held]
    else:
        train_texts, train_y, test_texts, test_y = labeled.texts, labeled.y, [], []
    say(
        f"{labeled.task}: {len(train_texts)} training and {len(test_texts)} test examples "
        f"(text column {labeled.text_col!r}, label column {labeled.label_col!r})",
        quiet=config.quiet,
    )
    start = time.perf_counter()
    model = fit_model(train_texts, train_y, task=labeled.task, backbone=backbone, config=config)
    model.info["fit_seconds"] = round(time.perf_counter() - start, 2)
    model.data_info = {
        "text_col": labeled.text_col,
        "label_col": labeled.label_col,
        "source": labeled.source,
        "n_train": len(train_texts),
        "n_test": len(test_texts),
    }
    if test_texts:
        model.metrics = _metrics(model, test_texts, test_y, quiet=config.quiet)
    if output is not None:
        save_model(model, output, overwrite=overwrite)
    return model


def _metrics(model: TransferModel, texts: list[str], y: list[Any], *, quiet: bool = True) -> dict[str, Any]:
    predicted = model.predict(texts, quiet=quiet)
    classes = None
    if model.task != "regression":
        seen = {v for row in y for v in row} if model.task == "multilabel" else set(map(str, y))
        classes = model.classes + sorted(seen - set(model.classes))
    return compute_metrics(model.task, y, predicted, classes)


def evaluate(
    model: TransferModel | str | Path,
    data: str | Path | pd.DataFrame,
    *,
    text_col: str | None = None,
    label_col: str | None = None,
    label_sep: str = "|",
    quiet: bool = True,
) -> dict[str, Any]:
    """Metrics of a fitted model (or a model folder) on labeled data."""
    if not isinstance(model, TransferModel):
        model = load_model(model)
    text_col = text_col or model.data_info.get("text_col")
    label_col = label_col or model.data_info.get("label_col")
    frame = data if isinstance(data, pd.DataFrame) else read_table(data)
    # Columns remembered from training are used when present; explicit ones must exist.
    text_col = text_col if text_col in frame.columns or text_col != model.data_info.get("text_col") else None
    label_col = label_col if label_col in frame.columns or label_col != model.data_info.get("label_col") else None
    labeled = load_labeled(
        frame,
        text_col=text_col,
        label_col=label_col,
        task=model.task,
        label_sep=label_sep,
        min_classes=1,
        name=None if isinstance(data, pd.DataFrame) else str(data),
    )
    return _metrics(model, labeled.texts, labeled.y, quiet=quiet)


def load(path: str | Path) -> TransferModel:
    """Load a model folder written by :func:`fit` or :func:`save`."""
    return load_model(path)


def save(model: TransferModel, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``model`` to a model folder (safetensors + JSON)."""
    return save_model(model, path, overwrite=overwrite)
