"""Task metrics computed with scikit-learn, returned as JSON-ready dicts, shown as rich tables."""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.table import Table
from sklearn import metrics as skm
from sklearn.preprocessing import MultiLabelBinarizer


def _round(value: float) -> float:
    return float(round(float(value), 6))


def compute_metrics(
    task: str, y_true: list[Any], y_pred: list[Any], classes: list[str] | None = None
) -> dict[str, Any]:
    """Metrics of predictions against truth.

    Classification: accuracy, macro / weighted precision, recall and F1, per-class scores and the confusion
    matrix (rows = truth, columns = prediction, in ``labels`` order). Multi-label: the same per label plus
    micro F1, subset accuracy and Hamming loss. Regression: MSE, RMSE, MAE, R2.
    """
    result: dict[str, Any] = {"task": task, "n": len(y_true)}
    if task == "regression":
        truth, pred = np.asarray(y_true, float), np.asarray(y_pred, float)
        mse = skm.mean_squared_error(truth, pred)
        result.update(
            mse=_round(mse),
            rmse=_round(np.sqrt(mse)),
            mae=_round(skm.mean_absolute_error(truth, pred)),
            r2=_round(skm.r2_score(truth, pred)) if len(truth) > 1 else float("nan"),
        )
        return result
    if task == "multilabel":
        binarizer = MultiLabelBinarizer(classes=classes)
        truth, pred = binarizer.fit_transform(y_true), binarizer.transform(y_pred)
        labels = list(binarizer.classes_)
        result.update(
            subset_accuracy=_round(skm.accuracy_score(truth, pred)),
            hamming_loss=_round(skm.hamming_loss(truth, pred)),
            micro_f1=_round(skm.f1_score(truth, pred, average="micro", zero_division=0)),
        )
    else:
        labels = list(classes) if classes else sorted(set(map(str, y_true)) | set(map(str, y_pred)))
        truth, pred = [str(v) for v in y_true], [str(v) for v in y_pred]
        result["accuracy"] = _round(skm.accuracy_score(truth, pred))
        matrix = skm.confusion_matrix(truth, pred, labels=labels)
        result["confusion_matrix"] = {"labels": labels, "matrix": matrix.tolist()}
    for average in ("macro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(
            truth, pred, labels=None if task == "multilabel" else labels, average=average, zero_division=0
        )
        result.update({f"{average}_precision": _round(p), f"{average}_recall": _round(r), f"{average}_f1": _round(f)})
    p, r, f, s = skm.precision_recall_fscore_support(
        truth, pred, labels=None if task == "multilabel" else labels, average=None, zero_division=0
    )
    result["per_class"] = {
        label: {"precision": _round(p[i]), "recall": _round(r[i]), "f1": _round(f[i]), "support": int(s[i])}
        for i, label in enumerate(labels)
    }
    return result


def headline_metric(task: str) -> tuple[str, bool]:
    """The metric models are compared by, and whether higher is better."""
    return ("mse", False) if task == "regression" else ("macro_f1", True)


def metrics_table(metrics: dict[str, Any], title: str = "evaluation") -> list[Table]:
    """Rich tables: the summary, then per-class scores and the confusion matrix where they apply."""
    summary = Table(title=f"{title} ({metrics['n']} examples)", title_justify="left")
    summary.add_column("metric")
    summary.add_column("value", justify="right")
    for key, value in metrics.items():
        if isinstance(value, float):
            summary.add_row(key, f"{value:.4f}")
    tables = [summary]
    if "per_class" in metrics:
        per_class = Table(title="per class", title_justify="left")
        for column in ("class", "precision", "recall", "f1", "support"):
            per_class.add_column(column, justify="left" if column == "class" else "right")
        for label, row in metrics["per_class"].items():
            per_class.add_row(
                label, f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1']:.3f}", str(row["support"])
            )
        tables.append(per_class)
    if "confusion_matrix" in metrics and len(metrics["confusion_matrix"]["labels"]) <= 20:
        labels = metrics["confusion_matrix"]["labels"]
        matrix = Table(title="confusion matrix (rows: true, columns: predicted)", title_justify="left")
        matrix.add_column("")
        for label in labels:
            matrix.add_column(label, justify="right")
        for label, row in zip(labels, metrics["confusion_matrix"]["matrix"], strict=True):
            matrix.add_row(label, *map(str, row))
        tables.append(matrix)
    return tables
