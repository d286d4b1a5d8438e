"""Self-training with confident, class-balanced pseudo-labels (pure numpy around a head-fitting function).

The head trained on the source labels labels the target examples; the most confident ones of each predicted
class, the same number per class, join the training set, and the head is refitted. The share taken grows over
the rounds, as in class-balanced self-training (Zou, Yu, Kumar & Wang 2018, "Unsupervised Domain Adaptation for
Semantic Segmentation via Class-Balanced Self-Training", https://arxiv.org/abs/1810.07911): balancing per class
stops the classes the source head already favours from taking over the pseudo-labels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

FitHead = Callable[[np.ndarray, np.ndarray], Any]  # (features, class indices) -> a head with .scores(features)
SCHEDULE = (0.2, 0.4, 0.6)


def class_probabilities(scores: np.ndarray) -> np.ndarray:
    """Softmax of multi-class scores; a single binary logit becomes two columns.

    Shape:
        (n, k) scores, k >= 1 -> (n, max(k, 2)) probabilities.
    """
    scores = np.asarray(scores, np.float64)
    if scores.shape[1] == 1:
        positive = 1.0 / (1.0 + np.exp(-np.clip(scores[:, 0], -50, 50)))
        return np.column_stack([1.0 - positive, positive])
    shifted = np.exp(scores - scores.max(1, keepdims=True))
    return shifted / shifted.sum(1, keepdims=True)


def confident_pseudo_labels(probabilities: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """The most confident target examples, the same number for every class they are predicted as.

    Args:
        probabilities: Class probabilities of the target examples.
        fraction: Share of the target examples to label in all (``fraction * n / n_classes`` per class, fewer
            for a class predicted less often).

    Returns:
        (indices into the target examples, their pseudo-labels).

    Shape:
        probabilities (n, n_classes) -> two (m,) arrays, m <= fraction * n.
    """
    predicted, confidence = probabilities.argmax(1), probabilities.max(1)
    per_class = max(1, round(fraction * len(probabilities) / probabilities.shape[1]))
    chosen = []
    for label in range(probabilities.shape[1]):
        members = np.flatnonzero(predicted == label)
        chosen.append(members[np.argsort(-confidence[members], kind="stable")[:per_class]])
    indices = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, int)
    return indices, predicted[indices]


def self_train(
    source: np.ndarray,
    labels: np.ndarray,
    target: np.ndarray,
    fit_head: FitHead,
    *,
    schedule: Sequence[float] = SCHEDULE,
) -> tuple[Any, list[int]]:
    """Fit on the source, then refit on the source plus growing shares of pseudo-labeled target examples.

    Args:
        source: Source features.
        labels: Source class indices.
        target: Unlabeled target features.
        fit_head: Fits a head on (features, class indices).
        schedule: The share of the target pseudo-labeled in each round.

    Returns:
        The last head, and the number of pseudo-labels each round used.

    Shape:
        source (n_s, d), labels (n_s,), target (n_t, d).
    """
    head = fit_head(source, labels)
    used = []
    for fraction in schedule:
        indices, pseudo = confident_pseudo_labels(class_probabilities(head.scores(target)), fraction)
        head = fit_head(np.concatenate([source, target[indices]]), np.concatenate([labels, pseudo]))
        used.append(len(indices))
    return head, used
