"""The cheap from-scratch models: TF-IDF + logistic regression (texts), MFCC statistics + logistic regression
(audio). Each trains on every input of the run."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.model_selection import StratifiedKFold

from transferkit.backbones import create_backbone
from transferkit.heads import LOGISTIC_C, LinearHead, cross_validated_logistic
from transferkit.model import TransferModel
from transferkit.strategies.common import FitRun, frozen_embeddings
from transferkit.strategies.scratch.tfidf import TfidfFeatures
from transferkit.targets import TargetEncoder


def linear_head(X, target: np.ndarray, encoder: TargetEncoder, seed: int | None) -> LinearHead:
    """The baselines' linear model: logistic regression with C by stratified CV (where every class allows 2
    folds), one logistic model per label for multi-label, or ridge with alpha by CV for regression."""
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
        return cross_validated_logistic(X, target, StratifiedKFold(folds, shuffle=True, random_state=seed), seed)[0]
    model = LogisticRegression(C=LOGISTIC_C * 10, max_iter=3000, random_state=seed).fit(X, target)
    return LinearHead(model.coef_, model.intercept_, C=LOGISTIC_C * 10)


def fit_tfidf(run: FitRun) -> TransferModel:
    """TF-IDF + logistic regression (C by stratified CV where every class allows 2 folds), or ridge."""
    features = TfidfFeatures()
    head = linear_head(features.fit_transform(run.inputs), run.target, run.encoder, run.config.seed)
    return TransferModel(
        backbone=features,  # type: ignore[arg-type]  # a featuriser in the backbone's place
        head=head,
        target=run.encoder,
        config=run.config,
        strategy="tfidf-lr",
        info={"scratch": True, "features": features.dim},
    )


def fit_mfcc(run: FitRun) -> TransferModel:
    """MFCC statistics, standardised, + the baselines' linear model; the scaling is folded into the head, so the
    saved model is the (stateless) ``mfcc-stats`` featuriser and one linear layer."""
    features = create_backbone("mfcc-stats")
    X = frozen_embeddings(features, run.inputs, run.config, quiet=True)
    mean, scale = X.mean(axis=0), X.std(axis=0) + 1e-6
    head = linear_head((X - mean) / scale, run.target, run.encoder, run.config.seed)
    coef = head.coef / scale
    head = LinearHead(coef, head.intercept - coef @ mean, **head.info)
    return TransferModel(
        backbone=features, head=head, target=run.encoder, config=run.config, strategy="mfcc-lr",
        info={"scratch": True},
    )  # fmt: skip
