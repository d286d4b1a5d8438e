"""Transferability scores: how well a frozen backbone's features suit a labeled target task, without training.

Pure numpy (float64). Every score is "higher is better". Labels may be any hashable values; they are mapped
to class indices in sorted order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

EPSILON = 1e-5  # LogME's guard against division by zero, as in the reference implementation


def _features(features: Any) -> np.ndarray:
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] < 2:
        raise ValueError(f"features must be a 2-D array (examples x dimensions) with 2+ rows, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("features contain NaN or infinite values; check the backbone's output")
    return array


def _classes(y: Any, n: int) -> tuple[np.ndarray, int]:
    labels = np.asarray(y).reshape(-1)
    if len(labels) != n:
        raise ValueError(f"got {n} feature rows but {len(labels)} labels; they must match one to one")
    classes, index = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        raise ValueError("need at least 2 classes to score transferability")
    return index, len(classes)


def logme(features: Any, y: Any, *, regression: bool = False) -> float:
    """LogME: the maximum log evidence of a Bayesian linear model on the features, per example.

    You et al., "LogME: Practical Assessment of Pre-trained Models for Transfer Learning", ICML 2021, with
    the fixed-point iteration of You et al., "Ranking and Tuning Pre-trained Models: A New Paradigm for
    Exploiting Model Hubs", JMLR 2022. Classification scores each one-hot column as a regression target and
    averages; regression averages over target columns.

    Shape:
        features: (n, d). y: (n,) class labels, or (n,) / (n, k) numbers when ``regression``.
    """
    f = _features(features)
    n, d = f.shape
    if regression:
        targets = np.asarray(y, dtype=np.float64).reshape(n, -1) if np.size(y) % n == 0 else None
        if targets is None or not np.isfinite(targets).all():
            raise ValueError(f"regression targets must be {n} finite numbers (or {n} rows of them)")
    else:
        index, n_classes = _classes(y, n)
        targets = np.eye(n_classes)[index]
    if n > d:  # tall: eigen-decompose the small d x d Gram matrix; drop null directions (as the reference)
        eigenvalues, vectors = np.linalg.eigh(f.T @ f)
        s = np.sqrt(np.clip(eigenvalues, 0, None))
        keep = s > 1e-10
        s, u = s[keep], (f @ vectors[:, keep]) / s[keep]
    else:
        u, s, _ = np.linalg.svd(f, full_matrices=False)
    sigma = s**2
    x2 = (u.T @ targets) ** 2  # (k, targets): squared coordinates of y in the feature basis
    outside = (targets**2).sum(axis=0) - x2.sum(axis=0)  # energy of y outside the feature span
    return float(np.mean([_log_evidence(x2[:, j], outside[j], sigma, n, d) for j in range(targets.shape[1])]))


def _log_evidence(x2: np.ndarray, outside: float, sigma: np.ndarray, n: int, d: int) -> float:
    """Maximised log evidence per example of one target column (fixed-point updates of alpha and beta)."""
    alpha = beta = 1.0
    for _ in range(11):  # converges in 2-3 steps in practice; the reference caps it at 11 too
        t = alpha / beta
        gamma = (sigma / (sigma + t)).sum()
        m2 = (sigma * x2 / (t + sigma) ** 2).sum()
        res2 = (x2 / (1 + sigma / t) ** 2).sum() + outside
        alpha, beta = gamma / (m2 + EPSILON), (n - gamma) / (res2 + EPSILON)
        if abs(alpha / beta - t) / t <= 1e-3:
            break
    evidence = (
        d / 2 * np.log(alpha)
        + n / 2 * np.log(beta)
        - 0.5 * np.log(alpha + beta * sigma).sum()
        - beta / 2 * res2
        - alpha / 2 * m2
        - n / 2 * np.log(2 * np.pi)
    )
    return float(evidence / n)


def h_score(features: Any, y: Any, *, shrinkage: bool = True) -> float:
    """H-score: tr(cov(f)^-1 cov(E[f | y])), how much of the feature variance the classes explain.

    Bao et al., "An Information-Theoretic Approach to Transferability in Task Transfer Learning", ICIP 2019.
    With ``shrinkage`` (the default), the regularised H-score of Ibrahim et al., "Newer is Not Always Better:
    Rethinking Transferability Metrics, Their Peculiarities, Stability and Performance", ECML-PKDD 2022:
    cov(f) is replaced by its Ledoit-Wolf shrinkage estimate (weight a) and cov(E[f | y]) scaled by (1 - a),
    which keeps the score stable when examples are few compared with dimensions.

    Shape:
        features: (n, d). y: (n,) class labels.
    """
    f = _features(features)
    index, n_classes = _classes(y, len(f))
    counts = np.bincount(index, minlength=n_classes)
    means = np.zeros((n_classes, f.shape[1]))
    np.add.at(means, index, f)
    g = (means / counts[:, None])[index]  # every row replaced by its class mean
    between = np.cov(g, rowvar=False)
    if shrinkage:
        from sklearn.covariance import LedoitWolf

        estimate = LedoitWolf().fit(f - f.mean(axis=0))
        covariance, between = estimate.covariance_, (1 - estimate.shrinkage_) * between
    else:
        covariance = np.cov(f, rowvar=False)
    return float(np.trace(np.linalg.pinv(covariance, rcond=1e-15) @ between))


def nce(source_labels: Any, target_labels: Any) -> float:
    """NCE: the negative conditional entropy -H(Y | Z) of target labels Y given source-classifier labels Z.

    Tran et al., "Transferability and Hardness of Supervised Classification Tasks", ICCV 2019. 0 when the
    source label determines the target label; -H(Y) when they are independent.

    Shape:
        source_labels, target_labels: (n,) hard labels.
    """
    z = np.asarray(source_labels).reshape(-1)
    target, _ = _classes(target_labels, len(z))
    _, z = np.unique(z, return_inverse=True)
    joint = np.zeros((z.max() + 1, target.max() + 1))
    np.add.at(joint, (z, target), 1.0 / len(z))
    p_z = joint.sum(axis=1, keepdims=True)
    conditional = joint / p_z + 1e-20  # every z here occurs, so p_z > 0
    return float((p_z * (conditional * np.log(conditional)).sum(axis=1, keepdims=True)).sum())


def leep(source_probs: Any, y: Any) -> float:
    """LEEP: mean log-likelihood of the target labels under the "expected empirical predictor".

    Nguyen et al., "LEEP: A New Measure to Evaluate Transferability of Learned Representations", ICML 2020.
    The source classifier's probabilities theta(x) over source labels z give the empirical joint P(y, z);
    each example is predicted as sum_z P(y | z) theta(x)_z.

    Shape:
        source_probs: (n, n_source_classes), rows summing to 1. y: (n,) target labels.
    """
    theta = _features(source_probs)
    if (theta < 0).any() or not np.allclose(theta.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError("source_probs must be probabilities: non-negative rows that sum to 1")
    index, n_classes = _classes(y, len(theta))
    joint = np.zeros((n_classes, theta.shape[1]))
    np.add.at(joint, index, theta / len(theta))
    p_z = joint.sum(axis=0, keepdims=True)
    conditional = np.divide(joint, p_z, out=np.zeros_like(joint), where=p_z > 0)  # P(y | z)
    predicted = (theta @ conditional.T)[np.arange(len(theta)), index]
    return float(np.mean(np.log(predicted)))


def linear_probe_score(features: Any, y: Any, *, regression: bool = False, folds: int = 3, seed: int = 0) -> float:
    """Cross-validated score of a linear head on the frozen features: the slow, direct reference.

    Logistic regression (C=1, balanced folds) scored by macro-F1, or ridge (alpha by leave-one-out) scored by
    R2. Uses min(``folds``, rarest class count) stratified folds.
    """
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.metrics import f1_score, r2_score
    from sklearn.model_selection import KFold, StratifiedKFold

    f = _features(features)
    if regression:
        targets = np.asarray(y, dtype=np.float64)
        splits = KFold(folds, shuffle=True, random_state=seed).split(f)
        scores = [
            r2_score(targets[held], RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(f[fit], targets[fit]).predict(f[held]))
            for fit, held in splits
        ]
        return float(np.mean(scores))
    index, _ = _classes(y, len(f))
    rarest = np.bincount(index).min()
    if rarest < 2:
        raise ValueError("every class needs at least 2 examples for a cross-validated linear probe")
    splits = StratifiedKFold(min(folds, rarest), shuffle=True, random_state=seed).split(f, index)
    scores = []
    for fit, held in splits:
        head = LogisticRegression(C=1.0, max_iter=2000).fit(f[fit], index[fit])
        scores.append(f1_score(index[held], head.predict(f[held]), average="macro"))
    return float(np.mean(scores))


SCORES: dict[str, dict[str, Any]] = {
    "logme": {
        "function": logme,
        "input": "features",
        "regression": True,
        "paper": "You et al., LogME: Practical Assessment of Pre-trained Models for Transfer Learning, ICML 2021",
    },
    "hscore": {
        "function": h_score,
        "input": "features",
        "regression": False,
        "paper": "Bao et al., ICIP 2019; shrinkage: Ibrahim et al., ECML-PKDD 2022",
    },
    "nce": {
        "function": nce,
        "input": "source_labels",
        "regression": False,
        "paper": "Tran et al., Transferability and Hardness of Supervised Classification Tasks, ICCV 2019",
    },
    "leep": {
        "function": leep,
        "input": "source_probs",
        "regression": False,
        "paper": "Nguyen et al., LEEP: A New Measure to Evaluate Transferability, ICML 2020",
    },
    "linear-probe": {
        "function": linear_probe_score,
        "input": "features",
        "regression": True,
        "paper": "cross-validated linear probe (reference)",
    },
}
Scorer = Callable[..., float]
