"""Feature extraction: a frozen encoder, cached embeddings, a scikit-learn or MLP head."""

from __future__ import annotations

from typing import Any

import numpy as np

from transferkit.config import FitConfig
from transferkit.heads import LinearHead, MLPHead, fit_linear_head, fit_mlp_head
from transferkit.model import TransferModel
from transferkit.strategies.common import FitRun
from transferkit.targets import TargetEncoder


def resolve_head(config: FitConfig, task: str) -> str:
    if config.head != "auto":
        return config.head
    return "ridge" if task == "regression" else "logistic"


def fit_head(
    embeddings: np.ndarray,
    target: np.ndarray,
    encoder: TargetEncoder,
    config: FitConfig,
    valid: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[LinearHead | MLPHead, dict[str, Any]]:
    """Fit the configured head on frozen embeddings."""
    kind = resolve_head(config, encoder.task)
    if kind == "mlp":
        head = fit_mlp_head(embeddings, target, encoder, valid=valid, seed=config.seed)
    else:
        head = fit_linear_head(embeddings, target, encoder, seed=config.seed)
    return head, {"head": kind}


def fit(run: FitRun) -> TransferModel:
    """The head on every input's frozen embedding."""
    head, info = fit_head(run.embeddings(), run.target, run.encoder, run.config)
    return TransferModel(
        backbone=run.backbone, head=head, target=run.encoder, config=run.config, strategy="feature-extraction",
        info=info,
    )  # fmt: skip
