"""Turn user labels into arrays a head can learn from, and back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from transferkit.errors import DataError


@dataclass(kw_only=True)
class TargetEncoder:
    """Labels <-> arrays for one task.

    Attributes:
        task: "classification", "multilabel" or "regression".
        classes: Sorted class (or label) names; empty for regression.
        mean, scale: Standardisation of regression targets (heads learn ``(y - mean) / scale``).
    """

    task: str
    classes: list[str] = field(default_factory=list)
    mean: list[float] = field(default_factory=list)
    scale: list[float] = field(default_factory=list)

    @classmethod
    def fit(cls, y: list[Any], task: str) -> TargetEncoder:
        if task == "classification":
            return cls(task=task, classes=sorted({str(v) for v in y}))
        if task == "multilabel":
            return cls(task=task, classes=sorted({str(v) for row in y for v in row}))
        values = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        scale = values.std(axis=0)
        return cls(task=task, mean=values.mean(axis=0).tolist(), scale=np.where(scale > 0, scale, 1.0).tolist())

    @property
    def n_outputs(self) -> int:
        """Width of the head: 1 for binary, one per class otherwise, one per target for regression."""
        if self.task == "classification":
            return 1 if len(self.classes) == 2 else len(self.classes)
        if self.task == "multilabel":
            return len(self.classes)
        return len(self.mean)

    def encode(self, y: list[Any]) -> np.ndarray:
        """Class indices (classification), an indicator matrix (multilabel) or standardised floats."""
        if self.task == "classification":
            index = {c: i for i, c in enumerate(self.classes)}
            unknown = sorted({str(v) for v in y} - index.keys())
            if unknown:
                raise DataError(
                    f"labels {unknown[:5]} were not seen in training (known: {', '.join(self.classes[:10])})"
                )
            return np.array([index[str(v)] for v in y], dtype=np.int64)
        if self.task == "multilabel":
            index = {c: i for i, c in enumerate(self.classes)}
            matrix = np.zeros((len(y), len(self.classes)), dtype=np.float32)
            for row, labels in enumerate(y):
                for label in labels:
                    if str(label) in index:
                        matrix[row, index[str(label)]] = 1.0
            return matrix
        values = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        return ((values - np.asarray(self.mean)) / np.asarray(self.scale)).astype(np.float32)

    def decode_regression(self, standardised: np.ndarray) -> np.ndarray:
        values = standardised * np.asarray(self.scale) + np.asarray(self.mean)
        return values[:, 0] if values.shape[1] == 1 else values

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task, "classes": self.classes, "mean": self.mean, "scale": self.scale}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TargetEncoder:
        return cls(**{k: data[k] for k in ("task", "classes", "mean", "scale") if k in data})
