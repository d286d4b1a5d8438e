"""Seeded train / held-out splits, stratified when the labels allow it."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split


def train_test_indices(
    y: list[Any], *, test_size: float, task: str, seed: int | None = 0, min_test: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a train part and a held-out part.

    Classification splits are stratified when every class has at least two examples, so that each class
    appears on both sides; otherwise (and for regression / multi-label) the split is a seeded shuffle. A class
    with one example is therefore not an error here: callers split for a test set, a validation set or a
    sample, and each copes with a class on one side only (reading the data already warned about such classes).

    Args:
        y: One label per example.
        test_size: Share of the examples in the held-out part.
        task: "classification", "multilabel" or "regression".
        seed: Seed of the shuffle.
        min_test: Fewest examples in the held-out part.

    Returns:
        (train indices, held-out indices), each sorted.
    """
    n = len(y)
    n_test = max(min_test, round(n * test_size))
    stratify = None
    if task == "classification":
        counts = Counter(y)
        if min(counts.values()) >= 2 and n_test >= len(counts) and n - n_test >= len(counts):
            stratify = y
    indices = np.arange(n)
    train, test = train_test_split(indices, test_size=n_test, random_state=seed, stratify=stratify)
    return np.sort(train), np.sort(test)
