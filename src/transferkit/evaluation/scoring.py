"""A model's metrics on labeled data, for any model with ``predict_outputs`` (PyTorch or exported): no torch here,
so an exported model is evaluated without it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from transferkit.data import load_labeled, read_table
from transferkit.evaluation.calibration import expected_calibration_error, reliability_bins
from transferkit.evaluation.metrics import compute_metrics


def model_metrics(model: Any, inputs: list[Any], y: list[Any], *, quiet: bool = True, with_calibration: bool = False):
    """Test metrics (plus the expected calibration error for classifiers); with ``with_calibration``, also
    the reliability bins for the report, as ``(metrics, calibration)``."""
    predicted, probabilities = model.predict_outputs(inputs, quiet=quiet)
    classes = None
    calibration = None
    if model.task != "regression":
        seen = {v for row in y for v in row} if model.task == "multilabel" else set(map(str, y))
        classes = model.classes + sorted(seen - set(model.classes))
    metrics = compute_metrics(model.task, y, predicted, classes)
    unseen = model.task == "classification" and not set(map(str, y)) <= set(model.classes)
    if model.task != "regression" and not unseen:  # ECE needs every true class among the model's outputs
        known = [[v for v in row if str(v) in model.classes] for row in y] if model.task == "multilabel" else y
        truth = model.target.encode(known)
        metrics["ece"] = round(expected_calibration_error(probabilities, truth, model.task), 4)
        calibration = {"ece": metrics["ece"], "reliability": reliability_bins(probabilities, truth, model.task)}
    return (metrics, calibration) if with_calibration else metrics


def evaluate_model(
    model: Any,
    data: str | Path | pd.DataFrame,
    *,
    text_col: str | None = None,
    label_col: str | None = None,
    label_sep: str = "|",
    quiet: bool = True,
) -> dict[str, Any]:
    """Metrics of a fitted model (a TransferModel or an exported model) on labeled data, read with the columns
    remembered from training when they are there."""
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
        modality=model.modality,
    )
    return model_metrics(model, labeled.inputs, labeled.y, quiet=quiet)
