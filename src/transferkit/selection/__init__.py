"""Model selection: rank pre-trained backbones for a data set by transferability, before training."""

from transferkit.selection.rank import DEFAULT_SCORE, candidates_for, nleep, rank, score_features
from transferkit.selection.scores import SCORES, h_score, leep, linear_probe_score, logme, nce

__all__ = [
    "DEFAULT_SCORE",
    "SCORES",
    "candidates_for",
    "h_score",
    "leep",
    "linear_probe_score",
    "logme",
    "nce",
    "nleep",
    "rank",
    "score_features",
]
