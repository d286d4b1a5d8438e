"""Transferability scores: hand-computable cases, and agreement with the published reference code.

The ``_reference_*`` functions are transcribed (numba decorators dropped) from
thuml/LogME ``LogME.py`` (MIT licence; ``_fit_fixed_point`` and ``truncated_svd``) and
thuml/Transfer-Learning-Library ``tllib/ranking/{hscore,nce,leep}.py`` (MIT licence), so that ours is
checked against the code the papers' numbers came from, on the same arrays.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.covariance import LedoitWolf

from transferkit.selection import h_score, leep, linear_probe_score, logme, nce, nleep


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


def _reference_logme(f, y, regression=False):
    f = f.astype(np.float64)
    if regression:
        y = y.astype(np.float64)
        if len(y.shape) == 1:
            y = y.reshape(-1, 1)
    n, d = f.shape
    if n > d:
        u, s, _ = _reference_truncated_svd(f)
    else:
        u, s, _ = np.linalg.svd(f, full_matrices=False)
    s = s.reshape(-1, 1)
    sigma = s**2
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
            beta = (n - gamma) / (res2 + 1e-5)
            t_ = alpha / beta
            if abs(t_ - t) / t <= 1e-3:
                break
        evidence = (
            d / 2.0 * np.log(alpha)
            + n / 2.0 * np.log(beta)
            - 0.5 * np.sum(np.log(alpha + beta * sigma))
            - beta / 2.0 * res2
            - alpha / 2.0 * m2
            - n / 2.0 * np.log(2 * np.pi)
        )
        evidences.append(evidence / n)
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


def _reference_regularized_h_score(f, y):  # Ibrahim et al.'s version, as added to TLlib's hscore.py
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


@pytest.fixture(scope="module")
def arrays():
    """Features with class structure: 3 classes, 120 examples, 16 dimensions (plus a wide variant)."""
    rng = np.random.default_rng(7)
    y = rng.integers(0, 3, 120)
    centres = rng.normal(size=(3, 16))
    f = centres[y] + rng.normal(scale=1.5, size=(120, 16))
    wide = rng.normal(size=(30, 64)) + np.eye(3)[rng.integers(0, 3, 30)] @ rng.normal(size=(3, 64))
    return f, y, wide


@pytest.mark.parametrize("shape", ["tall", "wide"])
def test_logme_classification_matches_the_official_implementation(arrays, shape):
    f, y, wide = arrays
    if shape == "wide":
        f, y = wide, np.arange(30) % 3
    np.testing.assert_allclose(logme(f, y), _reference_logme(f, y), rtol=1e-9)


def test_logme_regression_matches_the_official_implementation(arrays):
    f, _, _ = arrays
    rng = np.random.default_rng(1)
    targets = f @ rng.normal(size=(16, 2)) + rng.normal(size=(120, 2))
    np.testing.assert_allclose(logme(f, targets, regression=True), _reference_logme(f, targets, True), rtol=1e-9)
    single = targets[:, 0]
    np.testing.assert_allclose(logme(f, single, regression=True), _reference_logme(f, single, True), rtol=1e-9)


def test_logme_prefers_informative_features(arrays):
    f, y, _ = arrays
    noise = np.random.default_rng(3).normal(size=f.shape)
    assert logme(f, y) > logme(noise, y)
    targets = f[:, 0] * 2.0 + 0.1 * np.random.default_rng(4).normal(size=len(f))
    assert logme(f, targets, regression=True) > logme(noise, targets, regression=True)


def test_logme_takes_any_label_values(arrays):
    f, y, _ = arrays
    names = np.array(["cat", "dog", "eel"])[y]
    assert logme(f, names) == pytest.approx(logme(f, y))


def test_h_score_matches_tllib_with_and_without_shrinkage(arrays):
    f, y, _ = arrays
    np.testing.assert_allclose(h_score(f, y, shrinkage=False), _reference_h_score(f, y), rtol=1e-9)
    np.testing.assert_allclose(h_score(f, y), _reference_regularized_h_score(f, y), rtol=1e-9)


def test_h_score_of_class_indicator_features_is_computable_by_hand():
    # Features = one-hot class indicators of 2 balanced classes: f = [1, 0] or [0, 1]. E[f | y] = f, so
    # cov(E[f|y]) = cov(f) and tr(pinv(cov f) cov f) = rank(cov f) = 1 (the two columns sum to 1).
    y = np.array([0, 1] * 10)
    f = np.eye(2)[y]
    assert h_score(f, y, shrinkage=False) == pytest.approx(1.0)


def test_h_score_shrinkage_stays_finite_with_fewer_examples_than_dimensions(arrays):
    _, _, wide = arrays
    y = np.arange(30) % 3
    value = h_score(wide, y)
    assert np.isfinite(value) and 0 <= value <= 2  # at most C - 1 = 2 for a proper covariance
    assert h_score(wide, y, shrinkage=False) > value  # unregularised: inflated by the singular covariance


def test_nce_hand_cases():
    z = np.array([0, 0, 1, 1, 2, 2])
    assert nce(z, np.array([0, 0, 1, 1, 1, 1])) == pytest.approx(0.0, abs=1e-12)  # y is a function of z
    z = np.array([0, 1, 0, 1])
    assert nce(z, np.array([0, 0, 1, 1])) == pytest.approx(-np.log(2))  # independent: -H(Y) = -log 2


def test_nce_and_leep_match_tllib():
    rng = np.random.default_rng(11)
    logits = rng.normal(size=(200, 7)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = (probs[:, :3].argmax(axis=1) + (rng.random(200) < 0.3)) % 3
    np.testing.assert_allclose(nce(probs.argmax(axis=1), y), _reference_nce(probs.argmax(axis=1), y), rtol=1e-9)
    np.testing.assert_allclose(leep(probs, y), _reference_leep(probs, y), rtol=1e-9)


def test_leep_hand_cases():
    y = np.array([0, 1, 1, 0])
    assert leep(np.eye(2)[y], y) == pytest.approx(0.0, abs=1e-12)  # certain source labels that map 1:1
    assert leep(np.full((4, 2), 0.5), y) == pytest.approx(np.log(0.5))  # uninformative source: log P(y)


def test_nleep_and_linear_probe_rank_structure_above_noise(arrays):
    f, y, _ = arrays
    noise = np.random.default_rng(3).normal(size=f.shape)
    assert nleep(f, y) > nleep(noise, y)
    assert linear_probe_score(f, y) > linear_probe_score(noise, y) + 0.2
    targets = f[:, 0]
    assert linear_probe_score(f, targets, regression=True) > 0.9


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: logme(np.zeros(5), [0, 1, 0, 1, 0]), "2-D array"),
        (lambda: logme(np.ones((4, 2)), [0, 1, 0]), "match one to one"),
        (lambda: logme(np.ones((4, 2)), [1, 1, 1, 1]), "at least 2 classes"),
        (lambda: logme(np.full((4, 2), np.nan), [0, 1, 0, 1]), "NaN"),
        (lambda: logme(np.ones((4, 2)), [0.0, np.inf, 1.0, 2.0], regression=True), "finite numbers"),
        (lambda: leep(np.ones((4, 2)), [0, 1, 0, 1]), "probabilities"),
        (lambda: linear_probe_score(np.ones((4, 2)), [0, 1, 1, 1]), "at least 2 examples"),
    ],
)
def test_bad_inputs_say_what_is_wrong(call, message):
    with pytest.raises(ValueError, match=message):
        call()
