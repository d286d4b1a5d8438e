"""Synthetic texts for tests that need a signal a known word carries (imported by the test modules)."""

from __future__ import annotations

import numpy as np

FILLER = ["apple", "river", "stone", "cloud", "table", "green", "music", "paper", "window", "garden", "orange",
          "silver", "bread", "chair", "mountain"]  # fmt: skip


def keyword_texts(
    n: int, seed: int, keyword: str = "zebra", *, words: int = 8, filler: int = len(FILLER)
) -> tuple[list[str], list[str]]:
    """``words`` random words from the first ``filler`` of ``FILLER``; every second text also holds ``keyword``
    at a random place (label "pos"; the others "neg")."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        chosen = list(rng.choice(FILLER[:filler], size=words))
        if i % 2 == 0:
            chosen.insert(int(rng.integers(0, words + 1)), keyword)
        texts.append(" ".join(chosen))
        labels.append("pos" if i % 2 == 0 else "neg")
    return texts, labels
