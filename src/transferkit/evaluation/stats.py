"""The arithmetic behind "is transfer worth it": bootstrap scores, verdicts, labels and time saved.

Everything here is a pure function of arrays or small lists, so it is tested on hand-made curves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

HELPS = "transfer helps"
NO_DIFFERENCE = "no measurable difference"
NEGATIVE = "negative transfer"


def resample_weights(n: int, rounds: int, seed: int = 0) -> np.ndarray:
    """Bootstrap weights: row b counts how often each of ``n`` test examples is drawn in round b.

    Shape:
        (rounds, n) integers, each row summing to n.
    """
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=rounds)


def weighted_scores(task: str, truth: np.ndarray, predicted: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Headline score under each row of ``weights``: macro-F1 (classification, multi-label) or R2 (regression).

    Macro-F1 averages over the classes present in the full truth or predictions (as scikit-learn does); with
    all weights 1 it equals ``f1_score(average="macro")``.

    Shape:
        truth, predicted: (n,) class indices, (n, n_labels) 0/1, or (n,) / (n, k) numbers;
        weights: (rounds, n). Returns (rounds,).
    """
    weights = np.atleast_2d(weights).astype(np.float64)
    if task == "regression":
        truth = np.asarray(truth, dtype=np.float64).reshape(len(truth), -1)
        predicted = np.asarray(predicted, dtype=np.float64).reshape(len(truth), -1)
        total = weights.sum(axis=1, keepdims=True)
        mean = (weights @ truth) / total
        residual = weights @ (truth - predicted) ** 2
        spread = weights @ truth**2 - total * mean**2
        r2 = 1.0 - residual / np.where(spread > 0, spread, np.nan)
        return np.nanmean(r2, axis=1)
    if task == "multilabel":
        truth_on, predicted_on = np.asarray(truth).astype(bool), np.asarray(predicted).astype(bool)
        columns = [(truth_on[:, j], predicted_on[:, j]) for j in range(truth_on.shape[1])]
    else:
        truth, predicted = np.asarray(truth), np.asarray(predicted)
        classes = np.union1d(truth, predicted)
        columns = [(truth == c, predicted == c) for c in classes]
    f1 = []
    for is_true, is_predicted in columns:
        tp = weights @ (is_true & is_predicted)
        fp = weights @ (~is_true & is_predicted)
        fn = weights @ (is_true & ~is_predicted)
        denominator = 2 * tp + fp + fn
        f1.append(np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0))
    return np.mean(f1, axis=0)


def interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap values."""
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def verdict(low: float, high: float) -> str:
    """Plain-words verdict from the confidence interval of (transfer - scratch) score."""
    if low > 0:
        return HELPS
    if high < 0:
        return NEGATIVE
    return NO_DIFFERENCE


def _first_reaching(curve: Sequence[dict[str, Any]], level: float) -> dict[str, Any] | None:
    """The first point (smallest n) whose score reaches ``level``; curves are sorted by ``n``."""
    return next((point for point in curve if point["score"] >= level - 1e-12), None)


def savings(transfer: Sequence[dict[str, Any]], scratch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Labels and time each side needs to reach the same score.

    Args:
        transfer, scratch: Learning curves, lists of ``{"n": labeled examples, "score": mean score,
            "seconds": mean wall time}`` (any order).

    Returns:
        ``target``: the best from-scratch score. ``transfer_reaches``: whether transfer reaches it at any budget.
        When it does: ``labels_transfer`` / ``labels_scratch`` (smallest n reaching the target on each curve),
        ``labels_saved`` (share, 0-1), ``seconds_transfer`` / ``seconds_scratch`` at those points and
        ``time_saved`` (share; negative when transfer is slower). When it does not, the same numbers are given
        at ``equal_score``, the best score both curves reach, so the user still sees the trade.
    """
    if not transfer or not scratch:
        raise ValueError("savings need a transfer curve and a scratch curve, each with at least one point")
    transfer = sorted(transfer, key=lambda p: p["n"])
    scratch = sorted(scratch, key=lambda p: p["n"])
    best_scratch = max(p["score"] for p in scratch)
    best_transfer = max(p["score"] for p in transfer)
    reaches = best_transfer >= best_scratch - 1e-12
    level = best_scratch if reaches else best_transfer
    at_transfer, at_scratch = _first_reaching(transfer, level), _first_reaching(scratch, level)
    assert at_transfer is not None and at_scratch is not None  # level <= both maxima
    result: dict[str, Any] = {
        "target": best_scratch,
        "transfer_reaches": reaches,
        "equal_score": level,
        "labels_transfer": at_transfer["n"],
        "labels_scratch": at_scratch["n"],
        "labels_saved": 1.0 - at_transfer["n"] / at_scratch["n"],
        "seconds_transfer": at_transfer["seconds"],
        "seconds_scratch": at_scratch["seconds"],
    }
    result["time_saved"] = 1.0 - at_transfer["seconds"] / at_scratch["seconds"] if at_scratch["seconds"] > 0 else 0.0
    return result
