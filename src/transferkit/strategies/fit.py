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

AUTO_MARGIN = 0.01  # an arm must beat the frozen head by this much (cross-validated) to replace it
AUTO_FOLDS = 3
AUTO_REPEATS = 5  # cheap arms (frozen head, TF-IDF) are cross-validated this many times on small data ...
AUTO_REPEAT_MAX_N = 600  # ... up to this many examples
# Below this many labels per class (examples, for regression) auto keeps feature extraction without measuring:
# fine-tuning lost to it on every data set we measured, and cross-validation on 8-16 examples picked TF-IDF
# over it where it was worse on held-out data (benchmarks/auto_choice.py, `transferkit compare`).
AUTO_MIN_PER_CLASS = 16


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
    ranking = None
    if backbone == "auto":
        backbone, ranking = _choose_backbone(texts, y, task, config)
    elif not isinstance(backbone, Backbone):
        backbone = create_backbone(backbone, max_length=config.max_length)
    elif config.strategy != "feature-extraction":
        backbone = copy.deepcopy(backbone)  # fine-tuning moves weights: never mutate the caller's backbone
    encoder = TargetEncoder.fit(y, task)
    target = encoder.encode(y)
    fit_part, valid_part = np.arange(len(y)), None
    if config.strategy == "feature-extraction":
        embeddings = _embed(backbone, texts, config)
        head, info = fit_head(embeddings, target, encoder, config)
        model = TransferModel(
            backbone=backbone, head=head, target=encoder, config=config, strategy="feature-extraction", info=info
        )
    else:
        fit_part, valid_part = _validation_split(y, task, config)
        if config.strategy == "finetune":
            model = _finetune(backbone, texts, target, encoder, config, fit_part, valid_part)
        else:
            model = _auto(backbone, texts, target, encoder, config, fit_part, valid_part)
    if config.calibrate and task != "regression":
        _calibrate(model, texts, target, encoder, config, valid_part)
    if ranking is not None:
        model.info["backbone_ranking"] = ranking
    return model


def _choose_backbone(texts: list[str], y: list[Any], task: str, config: FitConfig) -> tuple[Backbone, dict]:
    """``backbone="auto"``: the installed candidate with the best transferability score on these data
    (skipping inference-only backbones when the strategy must fine-tune)."""
    from transferkit.data.io import infer_modality
    from transferkit.selection.rank import rank

    result = rank(
        texts, y, task=task, rounds=0, seed=config.seed, max_length=config.max_length,
        cache_dir=config.cache_dir, use_cache=config.use_cache, quiet=config.quiet, modality=infer_modality(texts),
    )  # fmt: skip
    for row in result["ranking"]:
        backbone = create_backbone(row["name"], max_length=config.max_length)
        if config.strategy == "feature-extraction" or backbone.trainable:
            break
    else:
        raise DataError("no ranked candidate can be fine-tuned; use --strategy feature-extraction")
    ranking = {
        "score": result["score"],
        "chosen": row["name"],
        "scores": {r["name"]: r["scores"][result["score"]] for r in result["ranking"]},
    }
    say(f"backbone auto: {row['name']} ({result['summary']})", quiet=config.quiet)
    return backbone, ranking


def _calibrate(model, texts, target, encoder, config, valid_part) -> None:
    """Temperature scaling on data the model did not train on: the fine-tuning validation split, or
    out-of-fold scores (heads refitted per fold) for feature extraction and scratch baselines."""
    from transferkit.evaluation.calibration import fit_temperature

    if model.finetuned:
        if valid_part is None:
            model.info["calibration"] = "skipped: too few examples to hold out a validation split"
            return
        scores, truth, source = model.scores([texts[i] for i in valid_part]), target[valid_part], "validation split"
    else:
        folds = _folds(target, encoder, config)
        if folds is None:
            model.info["calibration"] = "skipped: too few examples per class for out-of-fold scores"
            return
        scores = np.zeros((len(texts), encoder.n_outputs), dtype=np.float64)
        for train, held in folds:
            if model.info.get("scratch"):  # a cheap baseline that auto kept
                part = _fit_baseline(model.strategy, [texts[i] for i in train], target[train], encoder, config)
                scores[held] = part.scores([texts[i] for i in held])
            else:
                embeddings = _embed(model.backbone, texts, config)
                head, _ = fit_head(embeddings[train], target[train], encoder, config)
                scores[held] = head.scores(embeddings[held])
        truth, source = target, f"{len(folds)}-fold out-of-fold scores"
    model.temperature = fit_temperature(scores, truth, encoder.task)
    model.info["calibration"] = {"method": "temperature", "temperature": round(model.temperature, 4), "on": source}


def _embed(backbone: Backbone, texts: list[str], config: FitConfig) -> np.ndarray:
    return embed(backbone, texts, cache_dir=config.cache_dir, use_cache=config.use_cache, quiet=config.quiet)


def _validation_split(y: list[Any], task: str, config: FitConfig) -> tuple[np.ndarray, np.ndarray | None]:
    if len(y) < 8:  # too small to hold anything out: train on everything, no early stopping
        return np.arange(len(y)), None
    train, valid = train_test_indices(y, test_size=config.validation_fraction, task=task, seed=config.seed)
    if task == "classification" and len({y[i] for i in train}) < len(set(y)):
        # Too few examples per class to stratify (say 2 per class, 10 classes): holding some out would remove a
        # class from training, so train on everything without early stopping.
        return np.arange(len(y)), None
    return train, valid


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
    """Compare the strategies (and a cheap from-scratch baseline) by k-fold cross-validation; keep the best.

    A single small validation split (4 examples at 8 labels per class) picks the worse strategy about as
    often as the better one, so every arm is scored on the held-out folds of the whole training set
    (fine-tuning early-stops on an inner split of each fold's training part, never on the scored fold).

    Arms: feature extraction; fine-tuning, when the backbone has gradients and the time budget covers its
    ``AUTO_FOLDS + 1`` runs; and the cheap scratch baselines of the modality (TF-IDF + logistic regression
    for text), so that where transfer does not pay, auto says so and does not use it (negative transfer).
    An arm replaces the cheaper feature extraction only when it wins fold by fold by more than ``AUTO_MARGIN``
    and the standard error of the paired difference. Below ``AUTO_MIN_PER_CLASS`` labels per class nothing is
    measured: feature extraction is used (cross-validating 8 examples picks the worse arm too often).
    """
    from transferkit.evaluation.baselines import BASELINES, baselines_for

    start = time.perf_counter()
    embeddings = _embed(backbone, texts, config)
    per_class = _per_class(target, encoder)
    if per_class < AUTO_MIN_PER_CLASS:
        unit = "examples" if encoder.task == "regression" else "labeled examples per class"
        reason = (
            f"feature-extraction: with {per_class} {unit} (below {AUTO_MIN_PER_CLASS}) no strategy can be "
            "validated reliably, and the frozen backbone was the best or within a point of it at that size in "
            "our measurements"
        )
        return _auto_final(embeddings, backbone, target, encoder, config, {"per_class": per_class}, reason)
    repeats = AUTO_REPEATS if len(texts) <= AUTO_REPEAT_MAX_N else 1
    folds = _folds(target, encoder, config, repeats=repeats)
    assert folds is not None  # AUTO_MIN_PER_CLASS examples per class leave enough for every fold
    n_folds = len(folds) // repeats
    metric = "minus MSE" if encoder.task == "regression" else "macro-F1"
    fold_scores: dict[str, np.ndarray] = {}
    fe_scores = []
    for train, held in folds:
        head, _ = fit_head(embeddings[train], target[train], encoder, config)
        fe_scores.append(_score(head.scores(embeddings[held]), target[held], encoder))
    fold_scores["feature-extraction"] = np.array(fe_scores)
    scratch = [name for name in baselines_for(backbone.modality) if BASELINES.info(name)["cost"] == "cheap"]
    for name in scratch:
        values = []
        for train, held in folds:
            model = _fit_baseline(name, [texts[i] for i in train], target[train], encoder, config)
            values.append(_score(model.scores([texts[i] for i in held]), target[held], encoder))
        fold_scores[name] = np.array(values)
    decision: dict[str, Any] = {"folds": n_folds, "repeats": repeats, "per_class": per_class}
    note = ""
    if not backbone.trainable:
        note = f"; fine-tuning skipped: {backbone.name} has no gradients"
    else:
        folds = folds[:n_folds]  # one repeat: fine-tuning is the expensive arm
        estimate = _estimate_finetune_seconds(backbone, texts, len(fit_part), config) * (len(folds) + 1)
        left = config.time_budget - (time.perf_counter() - start)
        decision["finetune_estimate_s"] = round(estimate, 1)
        if estimate > left:
            note = (
                f"; fine-tuning skipped: measuring it would take ~{estimate:.0f}s and the time budget leaves "
                f"{max(left, 0):.0f}s"
            )
        else:
            original = {n: p.detach().clone() for n, p in backbone.module.state_dict().items()}
            ft_scores = []
            for train, held in folds:
                inner_fit, inner_valid = _validation_split([_row_key(target[i]) for i in train], encoder.task, config)
                inner_valid = None if inner_valid is None else train[inner_valid]
                tuned = _finetune(backbone, texts, target, encoder, config, train[inner_fit], inner_valid, embeddings)
                ft_scores.append(_score(tuned.scores([texts[i] for i in held]), target[held], encoder))
                restore(backbone, {n: original[n] for n in tuned.finetuned})
            fold_scores["finetune"] = np.array(ft_scores)
    scores = {name: float(values.mean()) for name, values in fold_scores.items()}
    decision["scores"] = {k: round(v, 4) for k, v in scores.items()}
    # The cheapest arm holds unless another beats it, fold by fold, by more than the margin and more than the
    # standard error of the difference; among those, the best score wins.
    baseline = fold_scores["feature-extraction"]
    challengers = {k: scores[k] for k, v in fold_scores.items() if _wins(v, baseline[: len(v)])}
    chosen = max(challengers, key=challengers.get) if challengers else "feature-extraction"
    listed = ", ".join(f"{k} {v:.3f}" for k, v in sorted(scores.items(), key=lambda kv: -kv[1]))
    times = f" x {repeats}" if repeats > 1 else ""
    reason = f"{chosen}: {n_folds}-fold{times} {metric} {listed}{note}"
    if chosen == "feature-extraction" and len(scores) > 1:
        reason += (
            f" (another arm must win by more than {AUTO_MARGIN} and its standard error to replace the cheaper "
            "feature-extraction)"
        )
    if chosen in scratch:
        reason += "; transfer did not pay on these data (a from-scratch baseline scored higher), so it is not used"
        model = _fit_baseline(chosen, texts, target, encoder, config)
        model.info["auto"] = {**decision, "chosen": chosen, "reason": reason}
        return _auto_result(model)
    if chosen == "finetune":
        tuned = _finetune(backbone, texts, target, encoder, config, fit_part, valid_part, embeddings)
        tuned.info["auto"] = {**decision, "chosen": "finetune", "reason": reason}
        return _auto_result(tuned)
    return _auto_final(embeddings, backbone, target, encoder, config, decision, reason)


def _per_class(target: np.ndarray, encoder: TargetEncoder) -> int:
    """Examples of the rarest class (positives of the rarest label for multi-label; all for regression)."""
    if encoder.task == "classification":
        return int(np.bincount(target).min())
    if encoder.task == "multilabel":
        return int(np.asarray(target).sum(0).min())
    return len(target)


def _wins(challenger: np.ndarray, baseline: np.ndarray) -> bool:
    """Whether paired fold scores beat the baseline by more than AUTO_MARGIN and one standard error."""
    difference = challenger - baseline
    error = difference.std(ddof=1) / np.sqrt(len(difference)) if len(difference) > 1 else 0.0
    return bool(difference.mean() > max(AUTO_MARGIN, error))


def _fit_baseline(name: str, texts: list[Any], target: np.ndarray, encoder: TargetEncoder, config: FitConfig):
    from transferkit.evaluation.baselines import CHEAP_FITTERS

    if name not in CHEAP_FITTERS:
        raise ValueError(f"auto has no cheap baseline {name!r}")
    return CHEAP_FITTERS[name](texts, target, encoder, config)


def _row_key(value: Any) -> Any:
    """A hashable label for stratification (class index), or the value itself."""
    return value.item() if isinstance(value, np.generic) else tuple(value) if isinstance(value, np.ndarray) else value


def _folds(
    target: np.ndarray, encoder: TargetEncoder, config: FitConfig, repeats: int = 1
) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """Up to AUTO_FOLDS (train, held-out) index pairs per repeat, stratified for classification (as many folds
    as the rarest class allows, at least 2); None when the data are too few to hold anything out."""
    from sklearn.model_selection import RepeatedKFold, RepeatedStratifiedKFold

    n = len(target)
    if encoder.task == "classification":
        folds = min(AUTO_FOLDS, int(np.bincount(target).min()))
        if folds < 2:
            return None
        splitter = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=config.seed)
        return list(splitter.split(np.zeros(n), target))
    if n < 4 * AUTO_FOLDS:
        return None
    splitter = RepeatedKFold(n_splits=AUTO_FOLDS, n_repeats=repeats, random_state=config.seed)
    return list(splitter.split(np.zeros(n)))


def _auto_final(embeddings, backbone, target, encoder, config, decision, reason) -> TransferModel:
    head, info = fit_head(embeddings, target, encoder, config)  # on all training data
    info = {**info, "auto": {**decision, "chosen": "feature-extraction", "reason": reason}}
    return _auto_result(
        TransferModel(
            backbone=backbone, head=head, target=encoder, config=config, strategy="feature-extraction", info=info
        )
    )


def _auto_result(model: TransferModel) -> TransferModel:
    say(f"auto chose {model.info['auto']['reason']}", quiet=model.config.quiet)
    return model


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
