"""What every strategy's ``fit`` receives (:class:`FitRun`), and the helpers they share: splits, folds, scores."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import f1_score
from sklearn.model_selection import RepeatedKFold, RepeatedStratifiedKFold

from transferkit.backbones import Backbone
from transferkit.cache import embed
from transferkit.config import FitConfig
from transferkit.data.split import train_test_indices
from transferkit.evaluation import stats
from transferkit.strategies.registry import STRATEGIES, strategy_settings
from transferkit.targets import TargetEncoder

FOLDS = 3


@dataclass
class FitRun:
    """One strategy run: the training inputs, their encoded targets, the backbone and the settings.

    Attributes:
        inputs: Training inputs (texts, image or audio paths, arrays).
        target: Encoded targets (class indices, 0/1 rows, or standardised numbers).
        encoder: The label encoding.
        backbone: The backbone (None for strategies that build their own features).
        config: The shared settings (and the strategies' own, in ``config.options``).
        fit_part: Indices a strategy that holds out a validation split trains on (the others train on every
            input of the run).
        valid_part: Its held-out indices (early stopping, calibration), or None (too few examples).
        unlabeled: Unlabeled target inputs, for a strategy that adapts while it trains (``adapt="mcc"``).
        ngram_weight: The n-gram blend's share of the fitted model's logits (0: no blend; set by ``fit_model``
            from :func:`~transferkit.strategies.ngrams.plan_ngrams`, so that ``auto`` scores its arms as blended).
    """

    inputs: list[Any]
    target: np.ndarray
    encoder: TargetEncoder
    backbone: Backbone | None
    config: FitConfig
    fit_part: np.ndarray
    valid_part: np.ndarray | None = None
    unlabeled: list[Any] | None = None
    ngram_weight: float = 0.0
    _embeddings: np.ndarray | None = field(default=None, repr=False)

    @property
    def task(self) -> str:
        return self.encoder.task

    def embeddings(self) -> np.ndarray:
        """Frozen embeddings of every input (through the on-disk cache; computed once per run)."""
        if self._embeddings is None:
            self._embeddings = frozen_embeddings(self.backbone, self.inputs, self.config)
        return self._embeddings

    def has_embeddings(self) -> bool:
        """Whether :meth:`embeddings` has encoded every input already."""
        return self._embeddings is not None

    def settings(self, strategy: str) -> Any:
        """``strategy``'s own settings (defaults where ``config.options`` says nothing)."""
        return strategy_settings(STRATEGIES.get(strategy), self.config.options)

    def scores_of(self, model: Any, indices: np.ndarray) -> np.ndarray:
        """``model``'s scores on the inputs at ``indices``: from this run's embeddings when the model reads the
        same frozen backbone (no second encoding, even without the cache), else through the model."""
        if model.backbone is self.backbone and not model.finetuned and self._embeddings is not None:
            return model.head.scores(self._embeddings[indices])
        return model.scores([self.inputs[i] for i in indices])

    def subset(
        self, indices: np.ndarray, fit_part: np.ndarray | None = None, valid_part: np.ndarray | None = None
    ) -> FitRun:
        """The run restricted to ``indices`` (a fold); ``fit_part`` and ``valid_part`` index into them (default:
        all of them train, nothing is held out)."""
        indices = np.asarray(indices)
        return FitRun(
            inputs=[self.inputs[i] for i in indices],
            target=self.target[indices],
            encoder=self.encoder,
            backbone=self.backbone,
            config=self.config,
            fit_part=np.arange(len(indices)) if fit_part is None else np.asarray(fit_part),
            valid_part=valid_part,
            _embeddings=None if self._embeddings is None else self._embeddings[indices],
        )


def frozen_embeddings(
    backbone: Backbone, inputs: Sequence[Any], config: FitConfig, *, quiet: bool | None = None
) -> np.ndarray:
    """Frozen embeddings through the cache the settings name (progress shown unless quiet)."""
    quiet = config.quiet if quiet is None else quiet
    return embed(backbone, inputs, cache_dir=config.cache_dir, use_cache=config.use_cache, quiet=quiet)


def validation_split(y: Sequence[Any], task: str, config: FitConfig) -> tuple[np.ndarray, np.ndarray | None]:
    """(train, validation) indices for early stopping; no validation part when it cannot be held out."""
    if len(y) < 8:  # too small to hold anything out: train on everything, no early stopping
        return np.arange(len(y)), None
    train, valid = train_test_indices(y, test_size=config.validation_fraction, task=task, seed=config.seed)
    if task == "classification" and len({y[i] for i in train}) < len(set(y)):
        # Too few examples per class to stratify (say 2 per class, 10 classes): holding some out would remove a
        # class from training, so train on everything without early stopping.
        return np.arange(len(y)), None
    return train, valid


def row_key(value: Any) -> Any:
    """A hashable label for stratification (class index), or the value itself."""
    return value.item() if isinstance(value, np.generic) else tuple(value) if isinstance(value, np.ndarray) else value


def per_class(target: np.ndarray, encoder: TargetEncoder) -> int:
    """Examples of the rarest class (positives of the rarest label for multi-label; all for regression)."""
    if encoder.task == "classification":
        return int(np.bincount(target).min())
    if encoder.task == "multilabel":
        return int(np.asarray(target).sum(0).min())
    return len(target)


def folds(
    target: np.ndarray, encoder: TargetEncoder, config: FitConfig, repeats: int = 1
) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """Up to FOLDS (train, held-out) index pairs per repeat, stratified for classification (as many folds as
    the rarest class allows, at least 2); None when the data are too few to hold anything out."""
    n = len(target)
    if encoder.task == "classification":
        count = min(FOLDS, int(np.bincount(target).min()))
        if count < 2:
            return None
        splitter = RepeatedStratifiedKFold(n_splits=count, n_repeats=repeats, random_state=config.seed)
        return list(splitter.split(np.zeros(n), target))
    if n < 4 * FOLDS:
        return None
    splitter = RepeatedKFold(n_splits=FOLDS, n_repeats=repeats, random_state=config.seed)
    return list(splitter.split(np.zeros(n)))


def validation_score(scores: np.ndarray, target: np.ndarray, encoder: TargetEncoder) -> float:
    """Score on held-out data, higher is better: macro-F1, or minus the (standardised) MSE for regression."""
    if encoder.task == "regression":
        return -float(np.mean((scores - target) ** 2))
    truth = target.astype(int) if encoder.task == "multilabel" else target
    return float(f1_score(truth, predicted_outputs(scores, encoder.task), average="macro", zero_division=0))


def predicted_outputs(scores: np.ndarray, task: str) -> np.ndarray:
    """What a head's scores predict: class indices, 0/1 labels (multi-label) or the values (regression)."""
    if task == "regression":
        return scores
    if task == "multilabel":
        return (scores > 0).astype(int)
    return (scores[:, 0] > 0).astype(int) if scores.shape[1] == 1 else scores.argmax(1)


BOOTSTRAP = 200  # resamples for the standard error of a difference measured on one held-out set
ONE_SIDED_Z = 1.645  # a challenger must gain this many standard errors: a one-sided test at the 5% level


def paired_bootstrap_errors(
    scores: dict[str, np.ndarray], incumbent: str, truth: np.ndarray, task: str, seed: int | None
) -> dict[str, float]:
    """Standard error of each arm's held-out score minus the ``incumbent``'s, over ``BOOTSTRAP`` resamples of the
    held-out examples (paired: both arms are scored on the same resample).

    Shape:
        scores: name -> (n, k) outputs on the same n held-out examples; truth (n,) -> name -> float.
    """
    weights = stats.resample_weights(len(truth), BOOTSTRAP, seed=0 if seed is None else seed)
    draws = {
        name: stats.weighted_scores(task, truth, predicted_outputs(value, task), weights)
        for name, value in scores.items()
    }
    return {name: float(np.std(draws[name] - draws[incumbent], ddof=1)) for name in scores}
