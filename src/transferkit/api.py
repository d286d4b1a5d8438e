"""The Python front door: ``fit``, ``evaluate``, ``load``, ``save`` (the CLI calls exactly these)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd

from transferkit.artifacts import atomic_folder, check_output, load_model, save_model, write_json
from transferkit.backbones import Backbone
from transferkit.backbones.catalog import DEFAULT_BACKBONES
from transferkit.config import FitConfig
from transferkit.data import LabeledData, load_labeled, read_table, train_test_indices
from transferkit.errors import DataError
from transferkit.evaluation import compute_metrics
from transferkit.evaluation.calibration import expected_calibration_error, reliability_bins
from transferkit.experiments.compare import compare as run_compare
from transferkit.experiments.report import compare_report, model_report
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
        **settings: :class:`~transferkit.config.FitConfig` fields (strategy, unfreeze_layers, seed, ...) and the
            strategies' own settings (time_budget, ...).

    Returns:
        The fitted model; ``model.metrics`` holds the held-out evaluation.
    """
    config = FitConfig.from_settings(**settings)
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
    start = time.perf_counter()
    model = fit_model(train_inputs, train_y, task=labeled.task, backbone=backbone, config=config)
    model.info["fit_seconds"] = round(time.perf_counter() - start, 2)
    model.data_info = {
        "text_col": labeled.text_col,
        "label_col": labeled.label_col,
        "source": labeled.source,
        "n_train": len(train_inputs),
        "n_test": len(test_inputs),
    }
    calibration = None
    if test_inputs:
        model.metrics, calibration = _metrics(model, test_inputs, test_y, quiet=config.quiet, with_calibration=True)
    if output is not None:
        save_model(model, output, overwrite=overwrite, documents={"report.html": model_report(model, calibration)})
    return model


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
    **options: Any,
) -> dict[str, Any]:
    """Learning curves of transfer vs from-scratch baselines on ``data``; see
    :func:`transferkit.experiments.compare.compare` for the options. With ``output``, writes ``report.html``
    and ``compare.json`` there (all or nothing)."""
    if output is not None:
        check_output(output, overwrite=overwrite)
    labeled, held_out = _load_with_test(data, test, text_col, label_col, task, label_sep, modality, on_bad_file)
    result = run_compare(labeled, test=held_out, **options)
    if output is not None:
        with atomic_folder(Path(output).expanduser()) as folder:
            write_json(folder / "compare.json", result)
            (folder / "report.html").write_text(compare_report(result), encoding="utf-8")
    return result


def _metrics(
    model: TransferModel, inputs: list[Any], y: list[Any], *, quiet: bool = True, with_calibration: bool = False
):
    """Test metrics (plus the expected calibration error for classifiers); with ``with_calibration``, also
    the reliability bins for the report, as ``(metrics, calibration)``."""
    scores = model.scores(inputs, quiet=quiet)
    predicted = model.predict_from_scores(scores)
    classes = None
    calibration = None
    if model.task != "regression":
        seen = {v for row in y for v in row} if model.task == "multilabel" else set(map(str, y))
        classes = model.classes + sorted(seen - set(model.classes))
    metrics = compute_metrics(model.task, y, predicted, classes)
    unseen = model.task == "classification" and not set(map(str, y)) <= set(model.classes)
    if model.task != "regression" and not unseen:  # ECE needs every true class among the model's outputs
        probabilities = model.proba_from_scores(scores)
        known = [[v for v in row if str(v) in model.classes] for row in y] if model.task == "multilabel" else y
        truth = model.target.encode(known)
        metrics["ece"] = round(expected_calibration_error(probabilities, truth, model.task), 4)
        calibration = {"ece": metrics["ece"], "reliability": reliability_bins(probabilities, truth, model.task)}
    return (metrics, calibration) if with_calibration else metrics


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
        modality=model.backbone.modality,
    )
    return _metrics(model, labeled.inputs, labeled.y, quiet=quiet)


def load(path: str | Path) -> TransferModel:
    """Load a model folder written by :func:`fit` or :func:`save`."""
    return load_model(path)


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
