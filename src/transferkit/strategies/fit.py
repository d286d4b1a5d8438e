"""Fit a :class:`~transferkit.model.TransferModel` with the configured strategy."""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from transferkit.backbones import Backbone, create_backbone
from transferkit.cache import embed
from transferkit.config import FitConfig
from transferkit.data.split import train_test_indices
from transferkit.errors import DataError
from transferkit.heads import fit_linear_head
from transferkit.model import TransferModel
from transferkit.progress import say
from transferkit.strategies.feature_extraction import fit_head
from transferkit.strategies.finetune import finetune, restore
from transferkit.targets import TargetEncoder

AUTO_MARGIN = 0.005  # fine-tuning must beat the frozen head by this much on validation to be worth its cost


def fit_model(
    texts: Sequence[str],
    y: Sequence[Any],
    *,
    task: str,
    backbone: str | dict | Backbone | None = None,
    config: FitConfig | None = None,
) -> TransferModel:
    """Adapt a pre-trained backbone to labeled texts.

    Args:
        texts: Training texts.
        y: Labels (strings), label lists (multi-label) or numbers (regression).
        task: "classification", "multilabel" or "regression".
        backbone: Catalog name, folder, hub id or :class:`Backbone`; default: the bundled MiniLM.
        config: Strategy and training settings.

    Raises:
        DataError: Too few examples to learn from.
    """
    config = config or FitConfig()
    texts, y = list(texts), list(y)
    if len(texts) != len(y):
        raise DataError(f"got {len(texts)} texts but {len(y)} labels; they must match one to one")
    if len(texts) < 2:
        raise DataError(f"need at least 2 labeled examples, got {len(texts)}")
    if not isinstance(backbone, Backbone):
        backbone = create_backbone(backbone, max_length=config.max_length)
    elif config.strategy != "feature-extraction":
        backbone = copy.deepcopy(backbone)  # fine-tuning moves weights: never mutate the caller's backbone
    encoder = TargetEncoder.fit(y, task)
    target = encoder.encode(y)
    if config.strategy == "feature-extraction":
        embeddings = _embed(backbone, texts, config)
        head, info = fit_head(embeddings, target, encoder, config)
        return TransferModel(
            backbone=backbone, head=head, target=encoder, config=config, strategy="feature-extraction", info=info
        )
    fit_part, valid_part = _validation_split(y, task, config)
    if config.strategy == "finetune":
        return _finetune(backbone, texts, target, encoder, config, fit_part, valid_part)
    return _auto(backbone, texts, target, encoder, config, fit_part, valid_part)


def _embed(backbone: Backbone, texts: list[str], config: FitConfig) -> np.ndarray:
    return embed(backbone, texts, cache_dir=config.cache_dir, use_cache=config.use_cache, quiet=config.quiet)


def _validation_split(y: list[Any], task: str, config: FitConfig) -> tuple[np.ndarray, np.ndarray | None]:
    if len(y) < 8:  # too small to hold anything out: train on everything, no early stopping
        return np.arange(len(y)), None
    return train_test_indices(y, test_size=config.validation_fraction, task=task, seed=config.seed)


def _finetune(backbone, texts, target, encoder, config, fit_part, valid_part, embeddings=None) -> TransferModel:
    embeddings = _embed(backbone, texts, config) if embeddings is None else embeddings
    probe = fit_linear_head(embeddings[fit_part], target[fit_part], encoder, seed=config.seed)
    valid = None if valid_part is None else ([texts[i] for i in valid_part], target[valid_part])
    head, changed, info = finetune(
        backbone, [texts[i] for i in fit_part], target[fit_part], encoder, probe, config, valid
    )
    info = {"head": "linear", **info}
    return TransferModel(
        backbone=backbone, head=head, target=encoder, config=config, strategy="finetune", finetuned=changed, info=info
    )


def _auto(backbone, texts, target, encoder, config, fit_part, valid_part) -> TransferModel:
    """Measure feature extraction, then fine-tuning if the time budget allows; keep the better on validation."""
    start = time.perf_counter()
    embeddings = _embed(backbone, texts, config)
    if valid_part is None:
        head, info = fit_head(embeddings, target, encoder, config)
        reason = "too few examples to hold out a validation split; used the cheaper feature-extraction"
        return _auto_result(backbone, head, encoder, config, "feature-extraction", {**info, "auto": {"reason": reason}})
    head, _ = fit_head(embeddings[fit_part], target[fit_part], encoder, config)
    fe_score = _score(head.scores(embeddings[valid_part]), target[valid_part], encoder)
    estimate = _estimate_finetune_seconds(backbone, texts, len(fit_part), config)
    left = config.time_budget - (time.perf_counter() - start)
    decision: dict[str, Any] = {"feature-extraction": round(fe_score, 4), "finetune_estimate_s": round(estimate, 1)}
    if estimate > left:
        reason = (
            f"feature-extraction (validation score {fe_score:.3f}); fine-tuning skipped: it would take "
            f"~{estimate:.0f}s and the time budget leaves {max(left, 0):.0f}s"
        )
        return _auto_final(backbone, texts, target, encoder, config, embeddings, decision, reason)
    original = {n: p.detach().clone() for n, p in backbone.module.named_parameters()}
    tuned = _finetune(backbone, texts, target, encoder, config, fit_part, valid_part, embeddings)
    ft_score = _score(tuned.scores(texts=[texts[i] for i in valid_part]), target[valid_part], encoder)
    decision["finetune"] = round(ft_score, 4)
    metric = "minus MSE" if encoder.task == "regression" else "macro-F1"
    if ft_score > fe_score + AUTO_MARGIN:
        tuned.info["auto"] = {
            **decision,
            "chosen": "finetune",
            "reason": f"finetune: validation {metric} {ft_score:.3f} vs {fe_score:.3f} for feature-extraction",
        }
        say(f"auto chose finetune: {tuned.info['auto']['reason']}", quiet=config.quiet)
        return tuned
    restore(backbone, {n: original[n] for n in tuned.finetuned})
    reason = (
        f"feature-extraction: validation {metric} {fe_score:.3f} vs {ft_score:.3f} for finetune "
        f"(fine-tuning must win by more than {AUTO_MARGIN} to justify its cost)"
    )
    return _auto_final(backbone, texts, target, encoder, config, embeddings, decision, reason)


def _auto_final(backbone, texts, target, encoder, config, embeddings, decision, reason) -> TransferModel:
    head, info = fit_head(embeddings, target, encoder, config)  # refit on all training data
    return _auto_result(
        backbone,
        head,
        encoder,
        config,
        "feature-extraction",
        {**info, "auto": {**decision, "chosen": "feature-extraction", "reason": reason}},
    )


def _auto_result(backbone, head, encoder, config, strategy, info) -> TransferModel:
    say(f"auto chose {info['auto']['reason']}", quiet=config.quiet)
    return TransferModel(backbone=backbone, head=head, target=encoder, config=config, strategy=strategy, info=info)


def _score(scores: np.ndarray, target: np.ndarray, encoder: TargetEncoder) -> float:
    """Validation score, higher is better: macro-F1, or minus the (standardised) MSE for regression."""
    from sklearn.metrics import f1_score

    if encoder.task == "regression":
        return -float(np.mean((scores - target) ** 2))
    if encoder.task == "multilabel":
        return float(f1_score(target.astype(int), (scores > 0).astype(int), average="macro", zero_division=0))
    predicted = (scores[:, 0] > 0).astype(int) if scores.shape[1] == 1 else scores.argmax(1)
    return float(f1_score(target, predicted, average="macro", zero_division=0))


def _estimate_finetune_seconds(backbone: Backbone, texts: list[str], n_fit: int, config: FitConfig) -> float:
    """Seconds fine-tuning would take: one frozen pass plus, per epoch, forward+backward of the trained blocks."""
    sample = texts[: min(16, len(texts))]
    start = time.perf_counter()
    backbone.encode(sample, batch_size=config.batch_size)
    per_text = (time.perf_counter() - start) / len(sample)
    blocks = backbone.num_blocks if config.unfreeze_layers == -1 else min(config.unfreeze_layers, backbone.num_blocks)
    share = blocks / backbone.num_blocks
    return per_text * len(texts) + per_text * share * 3.0 * n_fit * config.epochs
