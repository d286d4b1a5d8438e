"""Transferability scores: how well a frozen backbone's features suit a labeled target task, without training.

Pure numpy (float64). Every score is "higher is better". Labels may be any sortable values (strings, ints);
they are mapped to class indices in sorted order with ``np.unique``. :data:`SCORES` at the bottom is the one
table of them: what each reads, the tasks it applies to, whether ``rank`` runs it by default, and its paper.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

EPSILON = 1e-5  # LogME's guard against division by zero, as in the reference implementation


def _features(features: Any, name: str = "features") -> np.ndarray:
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] < 2:
        raise ValueError(f"{name} must be a 2-D array (examples x dimensions) with 2+ rows, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contain NaN or infinite values; check the backbone's output")
    return array


def _classes(y: Any, n: int) -> tuple[np.ndarray, int]:
    """Class indices (n,) in sorted label order, and the number of classes."""
    labels = np.asarray(y).reshape(-1)
    if len(labels) != n:
        raise ValueError(f"got {n} feature rows but {len(labels)} labels; they must match one to one")
    if labels.dtype.kind in "fc" and not np.isfinite(labels).all():
        raise ValueError("labels contain NaN or infinite values")
    classes, index = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        raise ValueError("need at least 2 classes to score transferability")
    return index.reshape(-1), len(classes)


def _regression_targets(y: Any, n: int) -> np.ndarray:
    """Regression targets as an (n, k) float64 array."""
    try:
        targets = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("regression targets must be numbers") from None
    if targets.ndim not in (1, 2) or targets.shape[0] != n:
        raise ValueError(f"regression targets must have shape ({n},) or ({n}, k), got {targets.shape}")
    if not np.isfinite(targets).all():
        raise ValueError(f"regression targets must be {n} finite numbers (or {n} rows of them)")
    return targets.reshape(n, -1)


def logme(features: Any, y: Any, *, regression: bool = False) -> float:
    """LogME: the maximum log evidence of a Bayesian linear model on the features, per example.

    You et al., "LogME: Practical Assessment of Pre-trained Models for Transfer Learning", ICML 2021, computed
    with the SVD-based fixed-point iteration of You et al., "Ranking and Tuning Pre-trained Models: A New
    Paradigm for Exploiting Model Hubs", JMLR 2022 (``LogME._fit_fixed_point`` in github.com/thuml/LogME).
    Classification scores each one-hot column as a regression target; the evidence, divided by n, is
    averaged over classes (or over target columns for regression).

    One deliberate difference from the official code: the log-determinant counts the d - rank(features) zero
    eigenvalues of the d x d posterior precision, so the score is the true evidence also when n < d or the
    features are rank-deficient (thuml/LogME issue #23, fix in PR #24; the ICML 2021 code path agrees). For
    full-rank features with n > d the two are identical.

    Args:
        features: (n, d) frozen features.
        y: (n,) class labels, or when ``regression`` (n,) / (n, k) numeric targets.
        regression: Score numeric targets instead of classes.

    Returns:
        The mean log evidence per example (higher is better).
    """
    f = _features(features)
    n, d = f.shape
    if regression:
        targets = _regression_targets(y, n)
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
        keep = s > 1e-10
        s, u = s[keep], u[:, keep]
    if len(s) == 0:
        raise ValueError("features are all zero; LogME needs features with at least one nonzero direction")
    sigma = s**2
    x2 = (u.T @ targets) ** 2  # (rank, targets): squared coordinates of y in the feature basis
    outside = (targets**2).sum(axis=0) - x2.sum(axis=0)  # energy of y outside the feature span
    return float(np.mean([_log_evidence(x2[:, j], outside[j], sigma, n) for j in range(targets.shape[1])]))


def _log_evidence(x2: np.ndarray, outside: float, sigma: np.ndarray, n: int) -> float:
    """Maximised log evidence per example of one target column (fixed-point updates of alpha and beta).

    ``sigma`` holds the rank-many nonzero squared singular values; zero ones add (d - rank) * log(alpha) to
    log|alpha I + beta F^T F|, which cancels that much of the d/2 * log(alpha) prior term, leaving rank/2.
    """
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
        len(sigma) / 2 * np.log(alpha)
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
    Rethinking Transferability Metrics, Their Peculiarities, Stability and Performance", ECML-PKDD 2022
    (arXiv:2110.06893): cov(f) is replaced by its Ledoit-Wolf estimate with shrinkage weight a, and
    cov(E[f | y]) scaled by (1 - a), which keeps the score stable when examples are few compared with
    dimensions. Without it, cov(f) is pseudo-inverted, as TLlib's ``h_score`` does.

    Args:
        features: (n, d) frozen features.
        y: (n,) class labels.
        shrinkage: Use the Ledoit-Wolf regularised version.

    Returns:
        The H-score (higher is better); at most C - 1 for C classes with a proper covariance.
    """
    f = _features(features)
    index, n_classes = _classes(y, len(f))
    counts = np.bincount(index, minlength=n_classes)
    means = np.zeros((n_classes, f.shape[1]))
    np.add.at(means, index, f)
    g = (means / counts[:, None])[index]  # every row replaced by its class mean
    between = np.cov(g, rowvar=False).reshape(f.shape[1], f.shape[1])
    if shrinkage:
        from sklearn.covariance import ledoit_wolf

        covariance, a = ledoit_wolf(f - f.mean(axis=0))
        between = (1 - a) * between
    else:
        covariance = np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])
    return float(np.trace(np.linalg.pinv(covariance, rcond=1e-15) @ between))


def nce(source_labels: Any, target_labels: Any) -> float:
    """NCE: the negative conditional entropy -H(Y | Z) of target labels Y given source-classifier labels Z.

    Tran et al., "Transferability and Hardness of Supervised Classification Tasks", ICCV 2019, from the
    empirical joint distribution of (Z, Y). 0 when the source label determines the target label; -H(Y) when
    they are independent.

    Args:
        source_labels: (n,) hard source labels Z, or (n, n_source_classes) source probabilities (their
            argmax is used).
        target_labels: (n,) target labels Y.

    Returns:
        -H(Y | Z) in nats (higher is better, at most 0).
    """
    z = np.asarray(source_labels)
    if z.ndim == 2 and z.shape[1] > 1:
        z = _features(z, "source_probs").argmax(axis=1)
    z = z.reshape(-1)
    target, n_target = _classes(target_labels, len(z))
    _, z = np.unique(z, return_inverse=True)
    z = z.reshape(-1)
    joint = np.zeros((z.max() + 1, n_target))
    np.add.at(joint, (z, target), 1.0 / len(z))
    p_z = joint.sum(axis=1, keepdims=True)  # every z here occurs, so p_z > 0
    conditional = joint / p_z + 1e-20  # P(y | z); 1e-20 keeps log finite, as in TLlib
    return float((p_z * (conditional * np.log(conditional)).sum(axis=1, keepdims=True)).sum())


def leep(source_probs: Any, y: Any) -> float:
    """LEEP: mean log-likelihood of the target labels under the "expected empirical predictor".

    Nguyen et al., "LEEP: A New Measure to Evaluate Transferability of Learned Representations", ICML 2020.
    The source classifier's probabilities theta(x) over source labels z give the empirical joint P(y, z);
    each example is predicted as sum_z P(y | z) theta(x)_z.

    Args:
        source_probs: (n, n_source_classes) source-classifier probabilities, rows summing to 1.
        y: (n,) target labels.

    Returns:
        The mean log-likelihood (higher is better, at most 0).
    """
    theta = _features(source_probs, "source_probs")
    if (theta < 0).any() or not np.allclose(theta.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError("source_probs must be probabilities: non-negative rows that sum to 1")
    index, n_classes = _classes(y, len(theta))
    joint = np.zeros((n_classes, theta.shape[1]))
    np.add.at(joint, index, theta / len(theta))
    p_z = joint.sum(axis=0, keepdims=True)
    conditional = np.divide(joint, p_z, out=np.zeros_like(joint), where=p_z > 0)  # P(y | z); 0 for unused z
    predicted = (theta @ conditional.T)[np.arange(len(theta)), index]
    return float(np.mean(np.log(predicted)))


def linear_probe_score(features: Any, y: Any, *, regression: bool = False, folds: int = 3, seed: int = 0) -> float:
    """Cross-validated score of a linear head on the frozen features: the slow, direct reference.

    Logistic regression (C=1) scored by macro-F1 over min(``folds``, rarest class count) stratified folds, or
    ridge regression (alpha chosen by efficient leave-one-out among 13 values) scored by R2 over ``folds``
    shuffled folds.

    Args:
        features: (n, d) frozen features.
        y: (n,) class labels, or when ``regression`` (n,) / (n, k) numeric targets.
        regression: Fit ridge regression instead of logistic regression.
        folds: Number of cross-validation folds (at least 2).
        seed: Seed of the fold shuffling.

    Returns:
        Mean held-out macro-F1 (classification) or R2 (regression); higher is better.
    """
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.metrics import f1_score, r2_score
    from sklearn.model_selection import KFold, StratifiedKFold

    f = _features(features)
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    if regression:
        targets = _regression_targets(y, len(f))
        targets = targets[:, 0] if targets.shape[1] == 1 else targets
        if len(f) < folds:
            raise ValueError(f"need at least {folds} examples for {folds}-fold cross-validation, got {len(f)}")
        scores = []
        for fit, held in KFold(folds, shuffle=True, random_state=seed).split(f):
            ridge = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(f[fit], targets[fit])
            scores.append(r2_score(targets[held], ridge.predict(f[held])))
        return float(np.mean(scores))
    index, _ = _classes(y, len(f))
    rarest = int(np.bincount(index).min())
    if rarest < 2:
        raise ValueError("every class needs at least 2 examples for a cross-validated linear probe")
    scores = []
    for fit, held in StratifiedKFold(min(folds, rarest), shuffle=True, random_state=seed).split(f, index):
        head = LogisticRegression(C=1.0, max_iter=2000).fit(f[fit], index[fit])
        scores.append(f1_score(index[held], head.predict(f[held]), average="macro"))
    return float(np.mean(scores))


def nleep(features: Any, y: Any, *, components_per_class: int = 5, seed: int = 0) -> float:
    """N-LEEP: LEEP with a Gaussian mixture standing in for the source classifier.

    Li et al., "Ranking Neural Checkpoints", CVPR 2021: features reduced by PCA to 80% of their variance, a
    Gaussian mixture with ``components_per_class`` x classes components fitted to them, and its posteriors
    used as the source-label probabilities of LEEP (Nguyen et al., ICML 2020). For backbones without a
    source classifier, such as sentence encoders.

    Args:
        features: (n, d) frozen features.
        y: (n,) class labels.
        components_per_class: Mixture components per target class (fewer when examples are too few).
        seed: Seed of the PCA solver and the mixture's initialisation.

    Returns:
        The LEEP of the mixture's posteriors (higher is better, at most 0).
    """
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    f = _features(features)
    _, n_classes = _classes(y, len(f))
    reduced = PCA(n_components=0.8, svd_solver="full", random_state=seed).fit_transform(f)
    components = components_per_class * n_classes
    while components >= len(f) and components > n_classes:  # a mixture needs fewer components than examples
        components -= n_classes
    mixture = GaussianMixture(components, covariance_type="diag", reg_covar=1e-4, random_state=seed)
    return leep(mixture.fit(reduced).predict_proba(reduced), y)


TASKS = ("classification", "multilabel", "regression")
NEEDS = ("features", "source_probs")


@dataclass(frozen=True, kw_only=True)
class Score:
    """One transferability score: its function, what it reads, where it applies, and its paper.

    The function takes ``(inputs, y)``; a score that applies beyond classification also takes
    ``regression=True`` (multi-label 0/1 columns are scored as k regression targets, as LogME does with
    one-hot labels), and a ``seeded`` one takes ``seed=``. Calling the entry dispatches accordingly.

    Attributes:
        function: The pure numpy score, higher is better.
        needs: "features" (a frozen backbone's (n, d) features) or "source_probs" (a source classifier's
            (n, n_source_classes) probabilities, which ``rank`` does not have).
        tasks: The tasks it applies to, among "classification", "multilabel" and "regression".
        fast: Cheap enough to run by default (``rank`` runs the fast ones that take features).
        paper: Where the score comes from.
        seeded: The function takes ``seed=`` (it shuffles or initialises something random).
    """

    function: Callable[..., float]
    needs: str
    tasks: tuple[str, ...]
    fast: bool
    paper: str
    seeded: bool = False

    def __post_init__(self) -> None:
        if self.needs not in NEEDS:
            raise ValueError(f"needs must be one of {', '.join(NEEDS)}, got {self.needs!r}")
        if not self.tasks or not set(self.tasks) <= set(TASKS):
            raise ValueError(f"tasks must be a non-empty subset of {', '.join(TASKS)}, got {self.tasks!r}")

    def applies_to(self, task: str) -> bool:
        """Whether the score is defined for ``task``.

        Raises:
            ValueError: ``task`` is not a known task.
        """
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")
        return task in self.tasks

    def __call__(self, inputs: Any, y: Any, task: str, *, seed: int = 0) -> float | None:
        """The score of ``inputs`` (features or source probabilities, as ``needs`` says) for targets ``y``.

        Returns:
            The score, or None when it does not apply to ``task``.
        """
        if not self.applies_to(task):
            return None
        options: dict[str, Any] = {"seed": seed} if self.seeded else {}
        if task != "classification":
            options["regression"] = True
        return self.function(inputs, y, **options)


SCORES: dict[str, Score] = {
    "logme": Score(
        function=logme,
        needs="features",
        tasks=TASKS,
        fast=True,
        paper="You et al., LogME: Practical Assessment of Pre-trained Models for Transfer Learning, ICML 2021",
    ),
    "hscore": Score(
        function=h_score,
        needs="features",
        tasks=("classification",),
        fast=True,
        paper=(
            "Bao et al., An Information-Theoretic Approach to Transferability in Task Transfer Learning, "
            "ICIP 2019; shrinkage: Ibrahim et al., Newer is Not Always Better, ECML-PKDD 2022"
        ),
    ),
    "nleep": Score(
        function=nleep,
        needs="features",
        tasks=("classification",),
        fast=True,
        paper="Li et al., Ranking Neural Checkpoints, CVPR 2021",
        seeded=True,
    ),
    "linear-probe": Score(
        function=linear_probe_score,
        needs="features",
        tasks=("classification", "regression"),  # a multi-label probe would be k probes; LogME covers it
        fast=False,  # cross-validated training: seconds to minutes, so rank runs it on request only
        paper="cross-validated linear probe (logistic regression macro-F1 / ridge R2), the direct reference",
        seeded=True,
    ),
    "nce": Score(
        function=nce,  # takes source probabilities (their argmax) or the hard source labels
        needs="source_probs",
        tasks=("classification",),
        fast=True,
        paper="Tran et al., Transferability and Hardness of Supervised Classification Tasks, ICCV 2019",
    ),
    "leep": Score(
        function=leep,
        needs="source_probs",
        tasks=("classification",),
        fast=True,
        paper="Nguyen et al., LEEP: A New Measure to Evaluate Transferability of Learned Representations, ICML 2020",
    ),
}
"""Every transferability score, by name: the one table that ``rank``, the CLI and the tests read."""


def score_names(*, needs: str | None = None, fast: bool | None = None) -> tuple[str, ...]:
    """Names of the scores in :data:`SCORES` (in table order) that read ``needs`` and whose ``fast`` matches.

    Args:
        needs: "features" or "source_probs"; None for both.
        fast: True for the fast scores only, False for the slow ones, None for all.
    """
    return tuple(
        name
        for name, entry in SCORES.items()
        if (needs is None or entry.needs == needs) and (fast is None or entry.fast == fast)
    )
