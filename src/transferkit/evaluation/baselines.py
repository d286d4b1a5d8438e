"""From-scratch baselines: what a model reaches *without* pre-trained weights, to measure transfer against.

Baselines are strong on purpose (a straw man flatters transfer). Each is registered with its modality, so
image, audio and tabular baselines (small CNN, MFCC statistics + linear model, gradient boosting) plug into
:func:`transferkit.evaluation.compare.compare` and ``fit --strategy auto`` the same way:

- ``tfidf-lr`` (text): TF-IDF word 1-2 grams + character 2-5 grams, logistic regression with C chosen by
  cross-validation (ridge for regression). Cheap, and the usual winner when labels follow words.
- ``small-cnn`` (image): a 4-block CNN on 32 px inputs, trained from random weights with AdamW (rate 1e-3, up
  to 60 epochs, early stopping on a validation split with patience 10, the run's augmentation). The usual
  from-scratch reference for images; ``benchmarks/vision.py`` measures it against transfer.
- ``mfcc-lr`` (audio): mean and standard deviation of 20 MFCCs and their deltas over the (silence-trimmed)
  clip, standardised, logistic regression with C by cross-validation. Cheap, so ``auto`` measures it too.
- ``scratch-encoder`` (any backbone): the *same* architecture as the backbone, weights re-initialised, every
  block trained. It isolates what the pre-trained weights are worth.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from transferkit.backbones import Backbone
from transferkit.config import FitConfig
from transferkit.heads import LOGISTIC_C, LinearHead
from transferkit.model import TransferModel
from transferkit.registry import Registry
from transferkit.targets import TargetEncoder

Baseline = Callable[..., TransferModel]
BASELINES: Registry[TransferModel] = Registry("baseline")
MAX_FEATURES = 50_000  # per analyzer: keeps model folders small (vocabulary JSON of a few MB)


class TfidfFeatures:
    """TF-IDF features of word 1-2 grams and character 2-5 grams (within word boundaries), concatenated.

    Stands where a backbone stands in a :class:`~transferkit.model.TransferModel`: ``encode`` gives the
    (sparse) features the linear head reads.
    """

    kind = "tfidf"
    modality = "text"
    name = "tfidf"

    def __init__(self, max_features: int = MAX_FEATURES) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.max_features = max_features
        self.word = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, max_features=max_features)
        self.char = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, max_features=max_features
        )

    def fit(self, texts: Sequence[str]) -> TfidfFeatures:
        self.word.fit(texts)
        self.char.fit(texts)
        return self

    def encode(self, texts: Sequence[str], **_: Any):
        from scipy.sparse import hstack

        return hstack([self.word.transform(texts), self.char.transform(texts)]).tocsr()

    @property
    def dim(self) -> int:
        return len(self.word.vocabulary_) + len(self.char.vocabulary_)

    def reference(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "max_features": self.max_features}

    def state(self) -> dict[str, torch.Tensor]:
        return {
            "word_idf": torch.from_numpy(self.word.idf_.astype(np.float32)),
            "char_idf": torch.from_numpy(self.char.idf_.astype(np.float32)),
        }

    def vocabulary(self) -> dict[str, list[str]]:
        """Terms in column order (JSON-ready; no pickle)."""
        return {
            part: sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.get)
            for part, vectorizer in (("word", self.word), ("char", self.char))
        }

    @classmethod
    def from_state(
        cls, reference: dict[str, Any], state: dict[str, torch.Tensor], vocabulary: dict[str, list[str]]
    ) -> TfidfFeatures:
        features = cls(max_features=reference.get("max_features", MAX_FEATURES))
        for part, vectorizer in (("word", features.word), ("char", features.char)):
            terms = vocabulary[part]
            idf = state[f"{part}_idf"].numpy().astype(np.float64)
            if len(terms) != len(idf):
                raise ValueError(f"{part} vocabulary has {len(terms)} terms but {len(idf)} idf weights")
            vectorizer.vocabulary_ = {term: i for i, term in enumerate(terms)}
            vectorizer.idf_ = idf
        return features


def linear_head(X, target: np.ndarray, encoder: TargetEncoder, seed: int | None) -> LinearHead:
    """The baselines' linear model: logistic regression with C by stratified CV (where every class allows 2
    folds), one logistic model per label for multi-label, or ridge with alpha by CV for regression."""
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV, RidgeCV
    from sklearn.model_selection import StratifiedKFold

    if encoder.task == "regression":
        ridge = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(X, target)
        return LinearHead(np.atleast_2d(ridge.coef_), np.atleast_1d(ridge.intercept_), alpha=float(ridge.alpha_))
    if encoder.task == "multilabel":
        coefs, intercepts = [], []
        for column in range(target.shape[1]):
            labels = target[:, column].astype(int)
            if len(np.unique(labels)) < 2:
                coefs.append(np.zeros(X.shape[1]))
                intercepts.append(10.0 if labels[0] == 1 else -10.0)
                continue
            model = LogisticRegression(C=10.0, max_iter=3000, random_state=seed).fit(X, labels)
            coefs.append(model.coef_[0])
            intercepts.append(model.intercept_[0])
        return LinearHead(np.stack(coefs), np.array(intercepts), C=10.0)
    folds = min(5, int(np.bincount(target).min()))
    if folds >= 2:
        cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
        model = LogisticRegressionCV(Cs=np.logspace(-2, 3, 11), cv=cv, max_iter=3000, random_state=seed)
        with warnings.catch_warnings():  # scikit-learn 1.8 announces default changes we do not depend on
            warnings.simplefilter("ignore", FutureWarning)
            model.fit(X, target)
        C = float(np.atleast_1d(model.C_)[0])
    else:
        C = LOGISTIC_C * 10
        model = LogisticRegression(C=C, max_iter=3000, random_state=seed).fit(X, target)
    return LinearHead(model.coef_, model.intercept_, C=C)


def fit_tfidf_model(
    texts: Sequence[str], target: np.ndarray, encoder: TargetEncoder, config: FitConfig
) -> TransferModel:
    """TF-IDF + logistic regression (C by stratified CV where every class allows 2 folds), or ridge."""
    features = TfidfFeatures().fit(texts)
    head = linear_head(features.encode(texts), target, encoder, config.seed)
    return TransferModel(
        backbone=features,  # type: ignore[arg-type]  # a featuriser in the backbone's place
        head=head,
        target=encoder,
        config=config,
        strategy="tfidf-lr",
        info={"scratch": True, "features": features.dim},
    )


def fit_mfcc_model(
    clips: Sequence[Any], target: np.ndarray, encoder: TargetEncoder, config: FitConfig
) -> TransferModel:
    """MFCC statistics, standardised, + the baselines' linear model; the scaling is folded into the head, so the
    saved model is the (stateless) ``mfcc-stats`` featuriser and one linear layer."""
    from transferkit.backbones import create_backbone
    from transferkit.cache import embed

    features = create_backbone("mfcc-stats")
    X = embed(features, list(clips), cache_dir=config.cache_dir, use_cache=config.use_cache, quiet=True)
    mean, scale = X.mean(axis=0), X.std(axis=0) + 1e-6
    head = linear_head((X - mean) / scale, target, encoder, config.seed)
    coef = head.coef / scale
    head = LinearHead(coef, head.intercept - coef @ mean, **head.info)
    return TransferModel(
        backbone=features, head=head, target=encoder, config=config, strategy="mfcc-lr", info={"scratch": True}
    )


# Cheap baselines that ``auto`` cross-validates next to transfer: (inputs, encoded target, encoder, config).
CHEAP_FITTERS = {"tfidf-lr": fit_tfidf_model, "mfcc-lr": fit_mfcc_model}


def randomized_copy(backbone: Backbone, seed: int | None = 0) -> Backbone:
    """The same architecture with freshly initialised weights (every module's ``reset_parameters``)."""
    clone = copy.deepcopy(backbone)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0 if seed is None else seed)
        for module in clone.module.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
    clone.__dict__.pop("_weights_hash", None)
    clone.name = f"{backbone.name} (random init)"
    return clone


def fit_scratch_encoder(
    texts: Sequence[str], y: Sequence[Any], *, task: str, backbone: Backbone, config: FitConfig
) -> TransferModel:
    """Train every block of a randomly initialised copy of ``backbone`` (higher rate, no layer decay)."""
    from dataclasses import replace

    from transferkit.strategies import fit_model

    scratch = randomized_copy(backbone, config.seed)
    settings = replace(
        config, strategy="finetune", unfreeze_layers=-1, learning_rate=3e-4, layer_decay=1.0, epochs=10, use_cache=False
    )
    model = fit_model(texts, y, task=task, backbone=scratch, config=settings)
    model.strategy = "scratch-encoder"
    model.info["scratch"] = True
    return model


@BASELINES.register("tfidf-lr", modality="text", cost="cheap")
def tfidf_lr(texts: Sequence[str], y: Sequence[Any], *, task: str, config: FitConfig, **_: Any) -> TransferModel:
    encoder = TargetEncoder.fit(list(y), task)
    return fit_tfidf_model(list(texts), encoder.encode(list(y)), encoder, config)


@BASELINES.register("mfcc-lr", modality="audio", cost="cheap")
def mfcc_lr(texts: Sequence[Any], y: Sequence[Any], *, task: str, config: FitConfig, **_: Any) -> TransferModel:
    encoder = TargetEncoder.fit(list(y), task)
    return fit_mfcc_model(list(texts), encoder.encode(list(y)), encoder, config)  # texts: the clips


@BASELINES.register("scratch-encoder", modality="any", cost="expensive")
def scratch_encoder(
    texts: Sequence[str], y: Sequence[Any], *, task: str, config: FitConfig, backbone: Backbone, **_: Any
) -> TransferModel:
    return fit_scratch_encoder(texts, y, task=task, backbone=backbone, config=config)


@BASELINES.register("small-cnn", modality="image", cost="expensive")
def small_cnn(texts: Sequence[Any], y: Sequence[Any], *, task: str, config: FitConfig, **_: Any) -> TransferModel:
    from dataclasses import replace

    from transferkit.backbones import create_backbone
    from transferkit.strategies import fit_model

    settings = replace(
        config, strategy="finetune", unfreeze_layers=-1, learning_rate=1e-3, head_learning_rate=1e-3,
        layer_decay=1.0, epochs=60, patience=10, batch_size=32, use_cache=False,
    )  # fmt: skip
    backbone = create_backbone("small-cnn", seed=config.seed or 0)
    model = fit_model(texts, y, task=task, backbone=backbone, config=settings)  # texts: the images
    model.strategy = "small-cnn"
    model.info["scratch"] = True
    return model


def baselines_for(modality: str) -> list[str]:
    """Registered baselines that apply to ``modality``."""
    return [name for name in BASELINES.names() if BASELINES.info(name)["modality"] in (modality, "any")]
