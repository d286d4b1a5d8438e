"""Transferability scores: hand-computable cases, and agreement with the published reference code.

The ``_reference_*`` functions are transcribed as test oracles (numba decorators dropped, loops kept) from:

- github.com/thuml/LogME, ``LogME.py``: ``truncated_svd``, ``LogME._fit_fixed_point`` (the default ``fit``)
  and ``each_evidence`` + ``LogME._fit_icml``. No licence file was found in the copy read; the README asks
  users to cite the papers. ``pad_sigma=True`` applies the fix of thuml/LogME issue #23 / PR #24.
- github.com/thuml/Transfer-Learning-Library (TLlib, MIT licence), ``tllib/ranking/hscore.py``
  (``h_score``, ``regularized_h_score``), ``tllib/ranking/nce.py`` and ``tllib/ranking/leep.py``.

so that ours is checked against the code the papers' numbers came from, on the same arrays.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.covariance import LedoitWolf

from transferkit.errors import TransferKitError
from transferkit.selection import SCORES, Score, h_score, leep, linear_probe_score, logme, nce, nleep, score_features
from transferkit.selection.scores import TASKS


def _reference_truncated_svd(x):
    u, s, vh = np.linalg.svd(x.transpose() @ x)
    s = np.sqrt(s)
    u_times_sigma = x @ vh.transpose()
    k = np.sum((s > 1e-10) * 1)
    s = s.reshape(-1, 1)
    s = s[:k]
    vh = vh[:k]
    u = u_times_sigma[:, :k] / s.reshape(1, -1)
    return u, s, vh


def _reference_logme(f, y, regression=False, pad_sigma=False):
    """LogME.fit with _fit_fixed_point; pad_sigma: evidence over all D eigenvalues (thuml/LogME PR #24)."""
    f = f.astype(np.float64)
    if regression:
        y = y.astype(np.float64)
        if len(y.shape) == 1:
            y = y.reshape(-1, 1)
    N, D = f.shape
    if N > D:
        u, s, _ = _reference_truncated_svd(f)
    else:
        u, s, _ = np.linalg.svd(f, full_matrices=False)
    s = s.reshape(-1, 1)
    sigma = s**2
    sigma_full = np.concatenate([sigma, np.zeros((D - len(sigma), 1))]) if pad_sigma else sigma
    evidences = []
    num_dim = y.shape[1] if regression else int(y.max() + 1)
    for i in range(num_dim):
        y_ = y[:, i] if regression else (y == i).astype(np.float64)
        y_ = y_.reshape(-1, 1)
        x = u.T @ y_
        x2 = x**2
        res_x2 = (y_**2).sum() - x2.sum()
        alpha, beta = 1.0, 1.0
        for _ in range(11):
            t = alpha / beta
            gamma = (sigma / (sigma + t)).sum()
            m2 = (sigma * x2 / ((t + sigma) ** 2)).sum()
            res2 = (x2 / ((1 + sigma / t) ** 2)).sum() + res_x2
            alpha = gamma / (m2 + 1e-5)
            beta = (N - gamma) / (res2 + 1e-5)
            t_ = alpha / beta
            if abs(t_ - t) / t <= 1e-3:
                break
        evidence = (
            D / 2.0 * np.log(alpha)
            + N / 2.0 * np.log(beta)
            - 0.5 * np.sum(np.log(alpha + beta * sigma_full))
            - beta / 2.0 * res2
            - alpha / 2.0 * m2
            - N / 2.0 * np.log(2 * np.pi)
        )
        evidences.append(evidence / N)
    return np.mean(evidences)


def _reference_each_evidence(y_, f, fh, v, s, vh, N, D):
    epsilon = 1e-5
    alpha = 1.0
    beta = 1.0
    lam = alpha / beta
    tmp = vh @ (f @ np.ascontiguousarray(y_))
    for _ in range(11):
        gamma = (s / (s + lam)).sum()
        m = v @ (tmp * beta / (alpha + beta * s))
        alpha_de = (m * m).sum()
        alpha = gamma / (alpha_de + epsilon)
        beta_de = ((y_ - fh @ m) ** 2).sum()
        beta = (N - gamma) / (beta_de + epsilon)
        new_lam = alpha / beta
        if np.abs(new_lam - lam) / lam < 0.01:
            break
        lam = new_lam
    evidence = (
        D / 2.0 * np.log(alpha)
        + N / 2.0 * np.log(beta)
        - 0.5 * np.sum(np.log(alpha + beta * s))
        - beta / 2.0 * (beta_de + epsilon)
        - alpha / 2.0 * (alpha_de + epsilon)
        - N / 2.0 * np.log(2 * np.pi)
    )
    return evidence / N


def _reference_logme_icml(f, y, regression=False):
    """LogME.fit with _fit_icml (the ICML 2021 code path: eigen-decomposition of the D x D matrix F^T F)."""
    f = f.astype(np.float64)
    if regression:
        y = y.astype(np.float64)
        if len(y.shape) == 1:
            y = y.reshape(-1, 1)
    fh = f
    f = f.transpose()
    D, N = f.shape
    v, s, vh = np.linalg.svd(f @ fh, full_matrices=True)
    num_dim = y.shape[1] if regression else int(y.max() + 1)
    evidences = []
    for i in range(num_dim):
        y_ = y[:, i] if regression else (y == i).astype(np.float64)
        evidences.append(_reference_each_evidence(y_, f, fh, v, s, vh, N, D))
    return np.mean(evidences)


def _reference_h_score(f, y):
    covf = np.cov(f, rowvar=False)
    C = int(y.max() + 1)
    g = np.zeros_like(f)
    for i in range(C):
        Ef_i = np.mean(f[y == i, :], axis=0)
        g[y == i] = Ef_i
    covg = np.cov(g, rowvar=False)
    return np.trace(np.dot(np.linalg.pinv(covf, rcond=1e-15), covg))


def _reference_regularized_h_score(f, y):
    f = f.astype("float64")
    f = f - np.mean(f, axis=0, keepdims=True)
    C = int(y.max() + 1)
    g = np.zeros_like(f)
    cov = LedoitWolf(assume_centered=False).fit(f)
    alpha = cov.shrinkage_
    covf_alpha = cov.covariance_
    for i in range(C):
        Ef_i = np.mean(f[y == i, :], axis=0)
        g[y == i] = Ef_i
    covg = np.cov(g, rowvar=False)
    return np.trace(np.dot(np.linalg.pinv(covf_alpha, rcond=1e-15), (1 - alpha) * covg))


def _reference_nce(source_labels, target_labels):
    C_t = int(np.max(target_labels) + 1)
    C_s = int(np.max(source_labels) + 1)
    N = len(source_labels)
    joint = np.zeros((C_t, C_s), dtype=float)
    for s, t in zip(source_labels, target_labels, strict=True):
        joint[int(t), int(s)] += 1.0 / N
    p_z = joint.sum(axis=0, keepdims=True)
    p_target_given_source = (joint / p_z).T
    mask = p_z.reshape(-1) != 0
    p_target_given_source = p_target_given_source[mask] + 1e-20
    entropy_y_given_z = np.sum(-p_target_given_source * np.log(p_target_given_source), axis=1, keepdims=True)
    return -np.sum(entropy_y_given_z * p_z.reshape((-1, 1))[mask])


def _reference_leep(source_pred, target_label):
    N, C_s = source_pred.shape
    target_label = target_label.reshape(-1)
    C_t = int(np.max(target_label) + 1)
    normalized_prob = source_pred / float(N)
    joint = np.zeros((C_t, C_s), dtype=float)
    for i in range(C_t):
        joint[i] = np.sum(normalized_prob[target_label == i], axis=0)
    p_target_given_source = (joint / joint.sum(axis=0, keepdims=True)).T
    empirical_prediction = source_pred @ p_target_given_source
    empirical_prob = np.array([p[label] for p, label in zip(empirical_prediction, target_label, strict=True)])
    return np.mean(np.log(empirical_prob))


RTOL = 1e-6
ICML_ATOL = 2e-3  # the ICML code path stops once alpha / beta moves < 1%; evidences are O(1)


@pytest.fixture(scope="module")
def arrays():
    """Features with class structure: 3 classes, 120 examples, 16 dimensions; and a wide (30 x 64) variant."""
    rng = np.random.default_rng(7)
    y = rng.integers(0, 3, 120)
    f = rng.normal(size=(3, 16))[y] + rng.normal(scale=1.5, size=(120, 16))
    wide_y = np.arange(30) % 3
    wide = rng.normal(size=(30, 64)) + rng.normal(size=(3, 64))[wide_y]
    return f, y, wide, wide_y


# --- LogME ---------------------------------------------------------------------------------------------------


def test_logme_matches_the_official_fixed_point_code_on_full_rank_tall_features(arrays):
    f, y, _, _ = arrays
    np.testing.assert_allclose(logme(f, y), _reference_logme(f, y), rtol=RTOL)
    targets = f @ np.random.default_rng(1).normal(size=(16, 2)) + np.random.default_rng(2).normal(size=(120, 2))
    np.testing.assert_allclose(logme(f, targets, regression=True), _reference_logme(f, targets, True), rtol=RTOL)
    single = targets[:, 0]
    np.testing.assert_allclose(logme(f, single, regression=True), _reference_logme(f, single, True), rtol=RTOL)


@pytest.mark.parametrize("shape", ["wide", "dead-columns"])
def test_logme_counts_every_zero_eigenvalue_when_features_lack_full_rank(arrays, shape):
    # n < d, or all-zero (dead) feature columns: the official fixed-point code leaves the d - rank zero
    # eigenvalues out of log|A| (thuml/LogME issue #23). Ours matches it with the PR #24 fix, and the ICML 2021
    # code path (which decomposes the full d x d matrix; it stops at a 1% change, hence the looser tolerance).
    f, y, wide, wide_y = arrays
    if shape == "wide":
        f, y = wide, wide_y
    else:
        f = np.hstack([f, np.zeros((len(f), 4))])
    np.testing.assert_allclose(logme(f, y), _reference_logme(f, y, pad_sigma=True), rtol=RTOL)
    np.testing.assert_allclose(logme(f, y), _reference_logme_icml(f, y), rtol=0, atol=ICML_ATOL)
    assert abs(logme(f, y) - _reference_logme(f, y)) > 0.05  # the documented deviation from the unfixed code
    targets = f @ np.random.default_rng(1).normal(size=(f.shape[1], 2)) + np.random.default_rng(2).normal(
        size=(len(f), 2)
    )
    ours = logme(f, targets, regression=True)
    np.testing.assert_allclose(ours, _reference_logme(f, targets, True, pad_sigma=True), rtol=RTOL)
    np.testing.assert_allclose(ours, _reference_logme_icml(f, targets, True), rtol=0, atol=ICML_ATOL)


def test_logme_agrees_with_the_icml_code_path_on_full_rank_features(arrays):
    f, y, _, _ = arrays
    np.testing.assert_allclose(logme(f, y), _reference_logme_icml(f, y), rtol=0, atol=ICML_ATOL)


def test_logme_prefers_informative_features(arrays):
    f, y, _, _ = arrays
    noise = np.random.default_rng(3).normal(size=f.shape)
    assert logme(f, y) > logme(noise, y)
    targets = f[:, 0] * 2.0 + 0.1 * np.random.default_rng(4).normal(size=len(f))
    assert logme(f, targets, regression=True) > logme(noise, targets, regression=True)


def test_logme_takes_any_label_values(arrays):
    f, y, _, _ = arrays
    names = np.array(["cat", "dog", "eel"])[y]
    assert logme(f, names) == pytest.approx(logme(f, y))
    assert logme(f, list(y + 10)) == pytest.approx(logme(f, y))


# --- H-score -------------------------------------------------------------------------------------------------


def test_h_score_matches_tllib_with_and_without_shrinkage(arrays):
    f, y, _, _ = arrays
    np.testing.assert_allclose(h_score(f, y, shrinkage=False), _reference_h_score(f, y), rtol=RTOL)
    np.testing.assert_allclose(h_score(f, y), _reference_regularized_h_score(f, y), rtol=RTOL)


def test_h_score_hand_cases():
    # One feature, f = [0, 2, 4, 6], classes [0, 0, 1, 1]: cov(f) = 20/3; class means [1, 1, 5, 5] have
    # cov 16/3, so H = (16/3) / (20/3) = 0.8.
    assert h_score(np.array([[0.0], [2.0], [4.0], [6.0]]), [0, 0, 1, 1], shrinkage=False) == pytest.approx(0.8)
    # Features = one-hot class indicators of 3 unbalanced classes: E[f | y] = f, so the score is
    # tr(pinv(cov f) cov f) = rank(cov f) = 2 (the columns sum to 1).
    y = np.array([0, 1, 2, 2, 1, 2, 0, 2, 2])
    assert h_score(np.eye(3)[y], y, shrinkage=False) == pytest.approx(2.0)


def test_h_score_shrinkage_stays_finite_with_fewer_examples_than_dimensions(arrays):
    _, _, wide, wide_y = arrays
    value = h_score(wide, wide_y)
    assert np.isfinite(value) and 0 <= value <= 2  # at most C - 1 = 2 with a proper covariance
    np.testing.assert_allclose(value, _reference_regularized_h_score(wide, wide_y), rtol=RTOL)
    assert h_score(wide, wide_y, shrinkage=False) > value  # unregularised: inflated by the singular covariance
    noise = np.random.default_rng(5).normal(size=wide.shape)
    assert h_score(noise, wide_y) < value
    assert h_score(noise, wide_y, shrinkage=False) == pytest.approx(2.0)  # plain: saturated at C - 1, even on noise


# --- NCE and LEEP --------------------------------------------------------------------------------------------


def test_nce_hand_cases():
    z = np.array([0, 0, 1, 1, 2, 2])
    assert nce(z, np.array([0, 0, 1, 1, 1, 1])) == pytest.approx(0.0, abs=1e-12)  # y is a function of z
    z = np.array([0, 1, 0, 1])
    assert nce(z, np.array([0, 0, 1, 1])) == pytest.approx(-np.log(2))  # independent: -H(Y) = -log 2
    assert nce(np.array(["a", "b", "a", "b"]), ["x", "x", "y", "y"]) == pytest.approx(-np.log(2))


def test_leep_hand_cases():
    y = np.array([0, 1, 1, 0])
    assert leep(np.eye(2)[y], y) == pytest.approx(0.0, abs=1e-12)  # certain source labels that map 1:1
    assert leep(np.full((4, 2), 0.5), y) == pytest.approx(np.log(0.5))  # uninformative source: log P(y)


@pytest.fixture(scope="module")
def source():
    rng = np.random.default_rng(11)
    logits = rng.normal(size=(200, 7)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = (probs[:, :3].argmax(axis=1) + (rng.random(200) < 0.3)) % 3
    return probs, y


def test_nce_and_leep_match_tllib(source):
    probs, y = source
    hard = probs.argmax(axis=1)
    np.testing.assert_allclose(nce(hard, y), _reference_nce(hard, y), rtol=RTOL)
    np.testing.assert_allclose(leep(probs, y), _reference_leep(probs, y), rtol=RTOL)
    assert nce(probs, y) == nce(hard, y)  # source probabilities are reduced to their argmax


def test_nce_and_leep_rank_an_informative_source_above_a_random_one(source):
    probs, y = source
    shuffled = probs[np.random.default_rng(0).permutation(len(probs))]
    assert nce(probs, y) > nce(shuffled, y)
    assert leep(probs, y) > leep(shuffled, y)


# --- linear probe, registry, validation ----------------------------------------------------------------------


def test_nleep_and_linear_probe_rank_structure_above_noise(arrays):
    f, y, _, _ = arrays
    noise = np.random.default_rng(3).normal(size=f.shape)
    assert nleep(f, y) > nleep(noise, y)
    assert linear_probe_score(f, y) > linear_probe_score(noise, y) + 0.2
    assert linear_probe_score(f, f[:, 0], regression=True) > 0.9


def test_linear_probe_uses_fewer_folds_when_a_class_is_rare(arrays):
    f, y, _, _ = arrays
    rare = np.where(y == 2)[0][2:]
    keep = np.setdiff1d(np.arange(len(y)), rare)  # class 2 keeps 2 examples: 2 stratified folds
    # 5 stratified folds of a 2-example class would make sklearn raise; the probe falls back to 2 folds.
    assert linear_probe_score(f[keep], y[keep], folds=5) == linear_probe_score(f[keep], y[keep], folds=2)


# --- the score table: every entry runs where it applies, prefers signal, and says None elsewhere -------------


@pytest.fixture(scope="module")
def signal():
    """For each (needs, task): informative inputs, uninformative ones of the same shape, and the targets.

    90 seeded examples in 3 classes; regression and multi-label targets are read off the informative features,
    and the informative source probabilities put most of their mass on a source class tied to the target class.
    """
    rng = np.random.default_rng(0)
    n = 90
    classes = np.arange(n) % 3
    features = rng.normal(size=(3, 8))[classes] * 1.5 + rng.normal(size=(n, 8))
    noise = rng.normal(size=(n, 8))
    targets = {
        "classification": classes,
        "regression": features @ rng.normal(size=8) + 0.3 * rng.normal(size=n),
        "multilabel": (features[:, :2] > np.median(features[:, :2], axis=0)).astype(np.float64),
    }
    logits = 3.0 * np.eye(5)[classes] + rng.normal(size=(n, 5))  # source classes 0-2 stand for the targets
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    random_probs = rng.dirichlet(np.ones(5), n)
    inputs = {"features": (features, noise), "source_probs": (probs, random_probs)}
    return {(needs, task): (*inputs[needs], targets[task]) for needs in inputs for task in TASKS}


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("name", list(SCORES))
def test_every_score_in_the_table_ranks_signal_above_noise_where_it_applies(signal, name, task):
    entry = SCORES[name]
    assert entry.paper, f"{name} cites no source"
    informative, uninformative, y = signal[entry.needs, task]
    value = entry(informative, y, task, seed=0)
    if task not in entry.tasks:
        assert value is None and entry(uninformative, y, task) is None
        return
    assert type(value) is float and np.isfinite(value)
    assert value > entry(uninformative, y, task, seed=0)
    assert entry(informative, y, task, seed=0) == value  # seeded: the same value on the same data


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("name", list(SCORES))
def test_score_features_dispatches_feature_scores_and_refuses_source_probability_scores(signal, name, task):
    entry = SCORES[name]
    informative, _, y = signal[entry.needs, task]
    if entry.needs == "source_probs":
        with pytest.raises(TransferKitError, match=rf"score '{name}' needs a source classifier's probabilities"):
            score_features(informative, y, task, [name])
        return
    assert score_features(informative, y, task, [name], seed=0) == {name: entry(informative, y, task, seed=0)}


def test_a_score_entry_checks_what_it_reads_and_the_tasks_it_names():
    with pytest.raises(ValueError, match="needs must be one of features, source_probs, got 'logits'"):
        Score(function=logme, needs="logits", tasks=("classification",), fast=True, paper="-")
    with pytest.raises(ValueError, match="tasks must be a non-empty subset"):
        Score(function=logme, needs="features", tasks=("ranking",), fast=True, paper="-")
    with pytest.raises(ValueError, match="unknown task 'ranking'"):
        SCORES["logme"](np.eye(4), [0, 1, 0, 1], "ranking")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: logme(np.zeros(5), [0, 1, 0, 1, 0]), "2-D array"),
        (lambda: logme(np.ones((4, 2)), [0, 1, 0]), "match one to one"),
        (lambda: logme(np.ones((4, 2)), [1, 1, 1, 1]), "at least 2 classes"),
        (lambda: logme(np.full((4, 2), np.nan), [0, 1, 0, 1]), "NaN"),
        (lambda: logme(np.zeros((4, 2)), [0, 1, 0, 1]), "all zero"),
        (lambda: logme(np.ones((4, 2)), [0.0, np.nan, 1.0, 1.0]), "labels contain NaN"),
        (lambda: logme(np.ones((4, 2)), [0.0, np.inf, 1.0, 2.0], regression=True), "finite numbers"),
        (lambda: logme(np.ones((4, 2)), np.arange(8.0), regression=True), "shape"),
        (lambda: logme(np.ones((4, 2)), ["a", "b", "c", "d"], regression=True), "must be numbers"),
        (lambda: h_score(np.ones((4, 2)), [0, 1]), "match one to one"),
        (lambda: nce([0, 1, 0], [0, 1]), "match one to one"),
        (lambda: nce([0, 1, 0], [1, 1, 1]), "at least 2 classes"),
        (lambda: leep(np.ones((4, 2)), [0, 1, 0, 1]), "probabilities"),
        (lambda: leep(np.full((4, 2), 0.5), [0, 1, 0]), "match one to one"),
        (lambda: linear_probe_score(np.ones((4, 2)), [0, 1, 1, 1]), "at least 2 examples"),
        (lambda: linear_probe_score(np.ones((4, 2)), [0, 1, 0, 1], folds=1), "folds must be at least 2"),
    ],
)
def test_bad_inputs_say_what_is_wrong(call, message):
    with pytest.raises(ValueError, match=message):
        call()
