"""The n-gram blend: word and character n-grams (the ``tfidf-lr`` model) blended into a text classifier's scores.

A pre-trained encoder reads meaning; it can miss the surface cues a few labels carry (a sender's phrasing, a
party's stock words, a name's spelling). A TF-IDF + logistic regression model reads exactly those. With
``ngrams="auto"`` (the default), every text classifier whose strategy uses a backbone gets that model beside
it when the n-grams alone come close to the frozen embeddings, and its scores become

    (1 - WEIGHT) x the model's logits + WEIGHT x the n-gram model's logits

(with softmax, the renormalised geometric mean of the two models' probabilities). The rule is measured before the
strategy trains, on the frozen embeddings (trained embeddings score 1.0 on their own training data): one
logistic regression with C by stratified cross-validation on each feature set, on the same folds, scored by
macro-F1; the n-grams blend in where their best cross-validated macro-F1 reaches ``SHARE`` of the embeddings'.
On a few examples that verdict is noisy (how the folds fall can move the ratio from 0.7 to 1.3), but neither
averaging repeated splits nor leaving out n-grams that score no better than chance chose better on the development
splits (``benchmarks/ngram_rule.py --dev``, six sets, 8 and 16 per class, three seeds: ``auto``'s mean macro-F1
0.697 with repeated splits, 0.698 and 0.697 with the chance bar, 0.698 with this rule, 0.703 choosing the better
in every cell), so the rule stays one split.
The TF-IDF fit that measured the n-grams is the blended model (where the rule measured on a sample, fitted again
on every example with the C it chose, once the blend is attached).

On development splits (``benchmarks/tune_fewshot.py``, six text sets, three seeds) the blend raised contrastive's
mean macro-F1 from 0.668 to 0.679 at 8 labels per class and from 0.705 to 0.719 at 16, most on the State of the
Union sets and spam, and cost up to a point on the single-word sets (``benchmarks/README.md``).
``ngrams="off"`` turns it off. Regression, multi-label, calibrated and domain-adapted models are never blended
(see :func:`plan_ngrams`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold

from transferkit.backbones import Backbone
from transferkit.data.split import train_test_indices
from transferkit.heads import LinearHead, cross_validated_logistic
from transferkit.progress import say
from transferkit.state import StatePart, register_state_part
from transferkit.strategies.common import FitRun, frozen_embeddings, row_key
from transferkit.strategies.scratch.tfidf import TfidfFeatures

WEIGHT = 0.5  # the n-gram model's share of the blended logits
SHARE = 0.8  # blend where the n-grams' cross-validated macro-F1 reaches this share of the embeddings'
SAMPLE = 1000  # the rule measures on at most this many examples (stratified); the blended model fits on all
FOLDS = 5
STATE = "ngrams.safetensors"
CONFIG = "ngrams.json"


class NgramBlend:
    """A TF-IDF featuriser and its linear head, blended into a model's scores with ``weight``."""

    def __init__(self, features: TfidfFeatures, head: LinearHead, weight: float) -> None:
        self.features, self.head, self.weight = features, head, float(weight)

    def scores(self, texts: list[str]) -> np.ndarray:
        """The n-gram model's logits."""
        return np.asarray(self.head.scores(self.features.encode(texts)), dtype=np.float32)

    def blend(self, scores: np.ndarray, texts: list[str]) -> np.ndarray:
        """``scores`` (the model's logits on ``texts``) blended with the n-gram model's."""
        return mix(scores, self.scores(texts), self.weight)

    def state(self) -> dict[str, torch.Tensor]:
        return {**self.features.state(), **{f"head_{k}": v for k, v in self.head.state().items()}}

    def config(self) -> dict[str, Any]:
        return {
            "weight": self.weight, "features": self.features.reference(), "head": self.head.config(),
            "vocabulary": self.features.vocabulary(),
        }  # fmt: skip

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor], config: dict[str, Any]) -> NgramBlend:
        features = TfidfFeatures.from_state(config["features"], state, config["vocabulary"])
        head = LinearHead.from_state({k[5:]: v for k, v in state.items() if k.startswith("head_")}, config["head"])
        return cls(features, head, config["weight"])


def mix(scores: Any, ngram_scores: Any, weight: float) -> Any:
    """The blended logits: ``(1 - weight)`` x a model's ``scores`` + ``weight`` x the n-gram model's."""
    return (1.0 - weight) * scores + weight * ngram_scores


def plan_ngrams(run: FitRun, uses_backbone: bool) -> tuple[NgramBlend | None, dict[str, Any]]:
    """Whether and how ``run``'s model will be blended: (the n-gram model or None, facts for ``model.info``).

    Measured on the frozen embeddings, so call it before the strategy trains the backbone."""
    why = _not_blended(run, uses_backbone)
    if why is not None:
        return None, {"weight": 0.0, "why": why}
    start = time.perf_counter()
    sample = _sample(run)
    texts = [run.inputs[i] for i in sample]
    target = run.target[sample]
    folds = rule_folds(target, len(run.encoder.classes), run.config.seed)
    if folds is None:
        return None, {"weight": 0.0, "why": "too few examples per class to measure the n-grams (fewer than 2)"}
    features = TfidfFeatures()
    try:
        counted = features.fit_transform(texts)
    except ValueError:  # scikit-learn: "empty vocabulary" (say, every word a single character)
        return None, {"weight": 0.0, "why": "the texts have no words of two or more characters to count"}
    head, ngram_score, embedding_score = measure(counted, _embeddings(run, sample), target, folds, run.config.seed)
    why_not = left_out(ngram_score, embedding_score)
    blended = why_not is None
    info = {
        "weight": WEIGHT if blended else 0.0,
        "cross_validated_macro_f1": {"ngrams": round(ngram_score, 4), "embeddings": round(embedding_score, 4)},
        "examples": len(sample),
    }
    verdict = "to be blended in" if blended else f"left out ({why_not})"
    say(
        f"n-grams: cross-validated macro-F1 {ngram_score:.3f} vs frozen embeddings {embedding_score:.3f}: {verdict}",
        quiet=run.config.quiet,
    )
    info["seconds"] = round(time.perf_counter() - start, 2)
    if not blended:
        return None, {**info, "why": why_not}
    return NgramBlend(features, head, WEIGHT), info


def rule_folds(target: np.ndarray, n_classes: int, seed: int | None) -> StratifiedKFold | None:
    """The rule's stratified folds of ``target`` (class indices): ``FOLDS``, fewer where a class has fewer
    examples; None below 2 examples in some class."""
    count = min(FOLDS, int(np.bincount(target, minlength=n_classes).min()))
    return StratifiedKFold(count, shuffle=True, random_state=seed) if count >= 2 else None


def left_out(ngram_score: float, embedding_score: float) -> str | None:
    """Why the rule leaves n-grams with these cross-validated macro-F1s out, or None where it blends them in."""
    if ngram_score < SHARE * embedding_score:
        return f"below {SHARE:.0%} of the embeddings'"
    return None


def measure(
    counted: Any, embeddings: np.ndarray, target: np.ndarray, folds: Any, seed: int | None
) -> tuple[LinearHead, float, float]:
    """The rule's measurement on ``folds``: the n-gram model (C by cross-validation, refitted on every row), its
    best cross-validated macro-F1, and the frozen embeddings' best on the same folds."""
    head, ngram_score = cross_validated_logistic(counted, target, folds, seed, _macro_f1)
    _, embedding_score = cross_validated_logistic(embeddings, target, folds, seed, _macro_f1)
    return head, ngram_score, embedding_score


def add_ngrams(model: Any, run: FitRun, blend: NgramBlend | None, info: dict[str, Any]) -> None:
    """Attach the planned blend to a fitted model (not to a model that is n-grams already: auto's ``tfidf-lr``).
    Where the rule measured on a sample, the blended model is fitted again on every text first (with the C the
    sample chose), only now that it is known to be needed."""
    if not isinstance(model.backbone, Backbone):
        return
    if blend is not None and info["examples"] < len(run.inputs):  # fitted on the rule's sample only
        start = time.perf_counter()
        features = TfidfFeatures()
        fitted = _logistic(blend.head.info["C"], run.config.seed).fit(features.fit_transform(run.inputs), run.target)
        blend = NgramBlend(features, LinearHead(fitted.coef_, fitted.intercept_, C=blend.head.info["C"]), WEIGHT)
        info["seconds"] = round(info["seconds"] + time.perf_counter() - start, 2)
    model.info["ngrams"] = info
    if blend is not None:
        model.ngrams = blend


def _not_blended(run: FitRun, uses_backbone: bool) -> str | None:
    config = run.config
    if config.ngrams == "off":
        return "ngrams='off'"
    if not uses_backbone or run.backbone is None or run.backbone.modality != "text":
        return "the strategy reads no text backbone"
    if run.task != "classification":
        return f"blending is for single-label classification, not {run.task}"
    if config.calibrate:
        return "calibration fits the temperature on the unblended model's held-out scores"
    if run.unlabeled is not None:
        return "domain adaptation: the n-grams are the source domain's"
    return None


def _sample(run: FitRun) -> np.ndarray:
    """All indices, or a stratified ``SAMPLE`` of them: the sample ``auto`` screens large data on (the same
    split), so that the two encode the same examples."""
    if len(run.target) <= SAMPLE:
        return np.arange(len(run.target))
    keys = [row_key(value) for value in run.target]
    return train_test_indices(keys, test_size=SAMPLE / len(keys), task=run.task, seed=run.config.seed)[1]


def _embeddings(run: FitRun, sample: np.ndarray) -> np.ndarray:
    """The frozen embeddings of the sample (only those are encoded when the run has not encoded everything)."""
    if run.has_embeddings() or len(sample) == len(run.inputs):
        return run.embeddings()[sample]
    return frozen_embeddings(run.backbone, [run.inputs[i] for i in sample], run.config)


def _logistic(C: float, seed: int | None) -> LogisticRegression:
    return LogisticRegression(C=C, max_iter=3000, random_state=seed)


def _macro_f1(estimator: Any, X: Any, target: np.ndarray) -> float:
    return float(f1_score(target, estimator.predict(X), average="macro", zero_division=0))


def _save(model: Any, folder: Path) -> None:
    save_file(model.ngrams.state(), str(folder / STATE))
    (folder / CONFIG).write_text(json.dumps(model.ngrams.config()) + "\n", encoding="utf-8")


def _load(folder: Path, config: dict[str, Any], loaded: dict[str, Any]) -> None:
    settings = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
    loaded["ngrams"] = NgramBlend.from_state(load_file(str(folder / STATE)), settings)


register_state_part(
    StatePart(
        name="ngrams",
        files=(STATE, CONFIG),
        applies=lambda model: getattr(model, "ngrams", None) is not None,
        save=_save,
        load=_load,
        order=60,
    )
)
