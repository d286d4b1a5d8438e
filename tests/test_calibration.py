"""Calibration: ECE on hand-computable cases, temperature scaling recovers a known temperature, and
``calibrate`` on fitted models (saved and loaded with the temperature)."""

from __future__ import annotations

import numpy as np
import pytest

import transferkit
from transferkit.config import FitConfig
from transferkit.evaluation.calibration import (
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    reliability_bins,
)
from transferkit.strategies.fit import fit_model


def test_ece_is_zero_when_confidence_matches_accuracy():
    # ten predictions at 80% confidence, eight right: perfectly calibrated
    probabilities = np.tile([0.8, 0.2], (10, 1))
    target = np.array([0] * 8 + [1] * 2)
    assert expected_calibration_error(probabilities, target) == pytest.approx(0.0)


def test_ece_by_hand():
    # bin (0.7, 0.8]: 2 samples at 0.75, 1 right -> gap 0.25; bin (0.9, 1.0]: 2 samples at 0.95, 2 right -> 0.05
    probabilities = np.array([[0.75, 0.25], [0.25, 0.75], [0.95, 0.05], [0.05, 0.95]])
    target = np.array([0, 0, 0, 1])
    assert expected_calibration_error(probabilities, target) == pytest.approx(0.5 * 0.25 + 0.5 * 0.05)
    bins = reliability_bins(probabilities, target)
    assert [b["count"] for b in bins] == [2, 2] and [b["accuracy"] for b in bins] == [0.5, 1.0]


def test_multilabel_ece_counts_every_decision():
    probabilities = np.array([[0.9, 0.2], [0.9, 0.2]])
    target = np.array([[1, 0], [0, 0]])
    # decisions: conf 0.9 right, 0.8 right, 0.9 wrong, 0.8 right -> bins (0.7,0.8]: acc 1 vs 0.8; (0.8,0.9]: 0.5 vs 0.9
    assert expected_calibration_error(probabilities, target, "multilabel") == pytest.approx(0.5 * 0.2 + 0.5 * 0.4)


def test_temperature_scaling_recovers_the_temperature(rng):
    logits = rng.normal(scale=2.0, size=(4000, 3))
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    target = np.array([rng.choice(3, p=p) for p in probabilities])
    overconfident = logits * 3.0
    temperature = fit_temperature(overconfident, target)
    assert temperature == pytest.approx(3.0, rel=0.1)
    assert negative_log_likelihood(overconfident / temperature, target, "classification") < negative_log_likelihood(
        overconfident, target, "classification"
    )


def test_binary_scores_calibrate(rng):
    logit = rng.normal(scale=2.0, size=(3000, 1))
    target = (rng.random(3000) < 1 / (1 + np.exp(-logit[:, 0]))).astype(int)
    assert fit_temperature(logit * 0.5, target) == pytest.approx(0.5, rel=0.15)


def test_calibrate_option_sets_a_temperature_and_it_survives_save_and_load(spam_frame, tmp_path):
    texts, y = spam_frame["text"].tolist(), spam_frame["label"].tolist()
    model = fit_model(texts[:45], y[:45], task="classification", backbone="toy-text",
                      config=FitConfig(strategy="feature-extraction", calibrate=True, quiet=True))  # fmt: skip
    assert model.info["calibration"]["on"].endswith("out-of-fold scores")
    assert model.temperature == pytest.approx(model.info["calibration"]["temperature"], abs=1e-4)
    before = model.predict_proba(texts[45:])
    transferkit.save(model, tmp_path / "model")
    loaded = transferkit.load(tmp_path / "model")
    assert loaded.temperature == pytest.approx(model.temperature)
    np.testing.assert_allclose(loaded.predict_proba(texts[45:]), before, rtol=1e-5, atol=1e-6)


def test_calibrate_method_keeps_predictions_and_lowers_held_out_nll(spam_frame):
    texts, y = spam_frame["text"].tolist(), spam_frame["label"].tolist()
    model = fit_model(
        texts[:30],
        y[:30],
        task="classification",
        backbone="toy-text",
        config=FitConfig(strategy="feature-extraction", quiet=True),
    )
    predicted = model.predict(texts[30:])
    target = model.target.encode(y[30:])
    nll_before = negative_log_likelihood(model.scores(texts[30:]), target, "classification")
    temperature = model.calibrate(texts[30:], y[30:])
    assert temperature > 0 and model.predict(texts[30:]) == predicted
    assert negative_log_likelihood(model.scores(texts[30:]) / temperature, target, "classification") <= nll_before


def test_regression_models_refuse_calibration(afinn_frame):
    model = fit_model(afinn_frame["text"].tolist(), afinn_frame["valence"].tolist(), task="regression",
                      backbone="toy-text", config=FitConfig(strategy="feature-extraction", quiet=True))  # fmt: skip
    with pytest.raises(TypeError, match="calibration applies to classifiers"):
        model.calibrate(afinn_frame["text"].tolist(), afinn_frame["valence"].tolist())
