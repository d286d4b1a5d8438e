"""Reverse validation: a label-free estimate of how well a domain adaptation method does on the target.

Train with the method from source to target, pseudo-label the target, then train with the same method back
from the pseudo-labeled target to held-out source examples and score that reverse model on their true
labels. A method that labels the target well yields a reverse model that labels the source well (Zhong, Fan,
Yang, Verscheure & Ren 2010, "Cross Validation Framework to Choose amongst Models and Datasets for Transfer
Learning", https://doi.org/10.1007/978-3-642-15939-8_35; used to choose among adaptation methods by Ganin et
al. 2016, https://arxiv.org/abs/1505.07818).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from transferkit.adaptation.self_training import class_probabilities

# method(source features, source class indices, target features) -> a function scoring target features
Method = Callable[[np.ndarray, np.ndarray, np.ndarray], Callable[[np.ndarray], np.ndarray]]
Score = Callable[[np.ndarray, np.ndarray], float]  # (scores, true class indices) -> higher is better


def reverse_validation(
    method: Method,
    source: np.ndarray,
    labels: np.ndarray,
    target: np.ndarray,
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    score: Score,
) -> np.ndarray:
    """The reverse-validation score of ``method`` on each (train, held-out) split of the source.

    Args:
        method: Trains on labeled features of one domain with unlabeled features of the other.
        source: Source features.
        labels: Source class indices.
        target: Unlabeled target features.
        splits: (train, held-out) index pairs into the source.
        score: Scores a reverse model's outputs on the held-out source labels.

    Returns:
        One score per split (the reverse model's, on the held-out source examples).

    Shape:
        source (n_s, d), labels (n_s,), target (n_t, d') -> (len(splits),).
    """
    values = []
    for train, held in splits:
        forward = method(source[train], labels[train], target)
        values.append(reverse_score(method, forward(target), target, source[held], labels[held], score))
    return np.asarray(values, dtype=np.float64)


def reverse_score(
    method: Method, scores: np.ndarray, target: np.ndarray, held: np.ndarray, labels: np.ndarray, score: Score
) -> float:
    """The backward half of reverse validation: train with ``method`` on the target, pseudo-labeled by the
    forward model's ``scores``, with the held-out source as its unlabeled domain; score it on their labels.

    Shape:
        scores (n_t, k), target (n_t, d), held (n_h, d), labels (n_h,) -> a float.
    """
    return score(reverse_outputs(method, scores, target, held), labels)


def reverse_outputs(method: Method, scores: np.ndarray, target: np.ndarray, held: np.ndarray) -> np.ndarray:
    """The reverse model's outputs on the ``held``-out source examples (see :func:`reverse_score`), to score or to
    resample. A forward model that labels the whole target one class yields a reverse model that says that class.

    Shape:
        scores (n_t, k), target (n_t, d), held (n_h, d) -> (n_h, k).
    """
    probabilities = class_probabilities(scores)
    pseudo = probabilities.argmax(1)
    if len(np.unique(pseudo)) < 2:
        constant = np.zeros((len(held), probabilities.shape[1]))
        constant[:, pseudo[0]] = 1.0
        return constant
    return method(target, pseudo, held)(held)


def choose(results: dict[str, np.ndarray], *, baseline: str = "none", margin: float = 0.01) -> tuple[str, str]:
    """The method to use, and why: the best reverse-validation score, when it beats ``baseline``'s by more than
    ``margin`` and by more than the standard error of the paired differences; else ``baseline``.

    Args:
        results: Method name -> its reverse-validation scores per split (same splits for all).
        baseline: The method to keep when unsure (source-only).
        margin: The smallest mean gain that counts.

    Returns:
        (chosen name, one-line reason).
    """
    means = {name: float(np.mean(values)) for name, values in results.items()}
    others = [name for name in results if name != baseline]
    if not others:
        return baseline, "no adaptation method to measure"
    best = max(others, key=means.get)
    gain = results[best] - results[baseline]
    error = float(np.std(gain, ddof=1) / np.sqrt(len(gain))) if len(gain) > 1 else 0.0
    measured = f"reverse validation {means[best]:.3f} vs {means[baseline]:.3f} source-only"
    if gain.mean() > max(margin, error):
        return best, f"{best}: {measured}"
    return (
        baseline,
        f"source-only: the best method ({best}, {measured}) did not gain more than {max(margin, error):.3f}",
    )


class RidgeScores:
    """A closed-form ridge classifier on standardised features: the quick stand-in for the configured head in
    reverse validation, which fits many heads (a logistic head on 1,280-d image features takes a minute on 2
    cores; this takes a fraction of a second). Classes absent from the labels get a score of -1 everywhere."""

    def __init__(self, features: np.ndarray, labels: np.ndarray, n_classes: int, alpha: float = 1.0) -> None:
        features = np.asarray(features, np.float64)
        self.mean = features.mean(0)
        self.scale = np.where((scale := features.std(0)) > 0, scale, 1.0)
        X = (features - self.mean) / self.scale
        Y = -np.ones((len(labels), max(n_classes, 2)))
        Y[np.arange(len(labels)), labels] = 1.0
        self.offset = Y.mean(0)
        if len(X) < X.shape[1]:  # the dual form solves an n x n system instead of a d x d one
            self.weights = X.T @ np.linalg.solve(X @ X.T + alpha * np.eye(len(X)), Y - self.offset)
        else:
            self.weights = np.linalg.solve(X.T @ X + alpha * np.eye(X.shape[1]), X.T @ (Y - self.offset))

    def scores(self, features: np.ndarray) -> np.ndarray:
        return ((np.asarray(features, np.float64) - self.mean) / self.scale) @ self.weights + self.offset
