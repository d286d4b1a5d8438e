"""Fold an affine feature map into a head, so that the saved head reads raw embeddings."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from transferkit.heads import LinearHead, MLPHead


class AffineInput:
    """Any object with ``scores(features)`` behind an affine map of its input (for heads that do not fold)."""

    def __init__(self, head: Any, matrix: np.ndarray, offset: np.ndarray) -> None:
        self.head, self.matrix, self.offset = head, matrix, offset

    def scores(self, features: np.ndarray) -> np.ndarray:
        return self.head.scores(features @ self.matrix + self.offset)


def compose(head: Any, matrix: np.ndarray, offset: np.ndarray) -> Any:
    """The head that scores ``X`` as ``head`` scores ``X @ matrix + offset``: a linear or MLP head with the map
    folded into its (first) layer, any other scorer wrapped in :class:`AffineInput`.

    Shape:
        matrix (d, k), offset (k,), a head on k features -> a head on d features.
    """
    if not isinstance(head, LinearHead | MLPHead):
        return AffineInput(head, matrix, offset)
    matrix, offset = np.asarray(matrix, np.float64), np.asarray(offset, np.float64)
    if isinstance(head, LinearHead):
        coef = head.coef.astype(np.float64)
        return LinearHead(coef @ matrix.T, coef @ offset + head.intercept, **head.info)
    first = head.network[0]
    weight = first.weight.detach().double().numpy()
    composed = MLPHead(matrix.shape[0], head.network[3].out_features, head.hidden, head.dropout)
    composed.network.load_state_dict(head.network.state_dict() | {
        "0.weight": torch.from_numpy(weight @ matrix.T).float(),
        "0.bias": torch.from_numpy(weight @ offset + first.bias.detach().double().numpy()).float(),
    })  # fmt: skip
    return composed
