"""Model selection: rank pre-trained backbones for a data set by transferability, before training.

The scores (:mod:`transferkit.selection.scores`, numpy only) import eagerly; the ranking names (which load
backbones, hence torch) on first use, so the command line can list the scores in its help without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from transferkit.selection.scores import (
    SCORES,
    Score,
    h_score,
    leep,
    linear_probe_score,
    logme,
    nce,
    nleep,
    score_names,
)

if TYPE_CHECKING:
    from transferkit.selection.ranking import DEFAULT_SCORE, candidates_for, rank, score_features

_RANKING = ("DEFAULT_SCORE", "candidates_for", "rank", "score_features")

__all__ = [
    "DEFAULT_SCORE",
    "SCORES",
    "Score",
    "candidates_for",
    "h_score",
    "leep",
    "linear_probe_score",
    "logme",
    "nce",
    "nleep",
    "rank",
    "score_features",
    "score_names",
]


def __getattr__(name: str) -> Any:
    if name not in _RANKING:
        raise AttributeError(f"module 'transferkit.selection' has no attribute {name!r}")
    return getattr(importlib.import_module("transferkit.selection.ranking"), name)
