"""Calibration: does a predicted 80% come true 80% of the time?

- :func:`expected_calibration_error` and :func:`reliability_bins` (Naeini et al. 2015; Guo et al. 2017,
  https://arxiv.org/abs/1706.04599): equal-width confidence bins, the gap between confidence and accuracy,
  weighted by the share of samples in each bin.
- :func:`fit_temperature`: temperature scaling, one scalar T that divides the logits, fitted by minimising
  the negative log-likelihood on held-out data. It never changes which class wins.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

DEFAULT_BINS = 10


def _confidence_and_hits(probabilities: np.ndarray, target: np.ndarray, task: str) -> tuple[np.ndarray, np.ndarray]:
    """Per decision: the predicted probability of the chosen outcome and whether it was right.

    Multi-class: top-class confidence. Multi-label: every (sample, label) decision on its own.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    target = np.asarray(target)
    if task == "multilabel":
        positive = probabilities.reshape(-1)
        truth = target.reshape(-1).astype(bool)
        predicted = positive >= 0.5
        return np.where(predicted, positive, 1.0 - positive), predicted == truth
    return probabilities.max(axis=1), probabilities.argmax(axis=1) == target


def reliability_bins(
    probabilities: np.ndarray, target: np.ndarray, task: str = "classification", bins: int = DEFAULT_BINS
) -> list[dict[str, float]]:
    """Equal-width confidence bins: mean confidence, accuracy and count of each non-empty bin.

    Shape:
        probabilities: (n, n_classes) (multi-label: (n, n_labels)); target: (n,) class indices
        (multi-label: (n, n_labels) 0/1).
    """
    confidence, hits = _confidence_and_hits(probabilities, target, task)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            rows.append(
                {
                    "low": float(edges[b]),
                    "high": float(edges[b + 1]),
                    "confidence": float(confidence[mask].mean()),
                    "accuracy": float(hits[mask].mean()),
                    "count": int(mask.sum()),
                }
            )
    return rows


def expected_calibration_error(
    probabilities: np.ndarray, target: np.ndarray, task: str = "classification", bins: int = DEFAULT_BINS
) -> float:
    """ECE = sum over bins of (bin share) * |accuracy - mean confidence|; 0 is perfectly calibrated."""
    rows = reliability_bins(probabilities, target, task, bins)
    total = sum(row["count"] for row in rows)
    return float(sum(row["count"] / total * abs(row["accuracy"] - row["confidence"]) for row in rows))


def _probabilities(scores: np.ndarray, task: str) -> np.ndarray:
    if task == "multilabel" or scores.shape[1] == 1:
        positive = 1.0 / (1.0 + np.exp(-np.clip(scores, -50, 50)))
        return positive if task == "multilabel" else np.column_stack([1.0 - positive[:, 0], positive[:, 0]])
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def negative_log_likelihood(scores: np.ndarray, target: np.ndarray, task: str) -> float:
    """Mean NLL of ``target`` under the probabilities the scores (logits) imply."""
    probabilities = np.clip(_probabilities(np.asarray(scores, dtype=np.float64), task), 1e-12, 1.0)
    target = np.asarray(target)
    if task == "multilabel":
        return float(-np.mean(np.where(target.astype(bool), np.log(probabilities), np.log1p(-probabilities))))
    return float(-np.mean(np.log(probabilities[np.arange(len(target)), target])))


def fit_temperature(scores: np.ndarray, target: np.ndarray, task: str = "classification") -> float:
    """The temperature T > 0 minimising the NLL of ``target`` under ``softmax(scores / T)``.

    Searched on log T in [1/20, 20], a bounded 1-D problem, so it is exact to the solver's tolerance.

    Shape:
        scores: (n, n_outputs) logits (binary: (n, 1)); target as in :func:`reliability_bins`.
    """
    scores = np.asarray(scores, dtype=np.float64)
    target = np.asarray(target)
    if len(scores) == 0:
        raise ValueError("cannot calibrate on zero examples; pass held-out labeled data")
    result = minimize_scalar(
        lambda log_t: negative_log_likelihood(scores / np.exp(log_t), target, task),
        bounds=(np.log(1 / 20), np.log(20)),
        method="bounded",
        options={"xatol": 1e-4},
    )
    return float(np.exp(result.x))
