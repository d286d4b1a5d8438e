"""The arithmetic of compare: savings on hand-made curves, verdicts at their edges, bootstrap scores."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, r2_score

from transferkit.evaluation import stats


def curve(*points):
    return [{"n": n, "score": score, "seconds": seconds} for n, score, seconds in points]


def test_savings_when_transfer_reaches_the_best_scratch_score():
    transfer = curve((8, 0.80, 2.0), (16, 0.86, 2.5), (64, 0.90, 4.0))
    scratch = curve((8, 0.60, 1.0), (16, 0.70, 1.5), (64, 0.80, 3.0), (512, 0.86, 20.0))
    result = stats.savings(transfer, scratch)
    assert result["transfer_reaches"] and result["target"] == 0.86
    # transfer first reaches 0.86 at 16 examples; scratch needs 512: 1 - 16/512 of the labels saved
    assert (result["labels_transfer"], result["labels_scratch"]) == (16, 512)
    assert result["labels_saved"] == pytest.approx(1 - 16 / 512)
    assert result["time_saved"] == pytest.approx(1 - 2.5 / 20.0)


def test_savings_when_transfer_never_reaches_scratch_uses_the_best_common_score():
    transfer = curve((8, 0.70, 5.0), (64, 0.75, 9.0))
    scratch = curve((8, 0.72, 1.0), (64, 0.90, 2.0))
    result = stats.savings(transfer, scratch)
    assert not result["transfer_reaches"]
    assert result["equal_score"] == 0.75  # the best score both reach
    assert (result["labels_transfer"], result["labels_scratch"]) == (64, 64)
    assert result["labels_saved"] == 0
    assert result["time_saved"] == pytest.approx(1 - 9.0 / 2.0)  # negative: transfer is slower


def test_savings_equal_curves_save_nothing_and_order_does_not_matter():
    points = curve((64, 0.9, 3.0), (8, 0.5, 1.0))
    result = stats.savings(points, list(reversed(points)))
    assert result["labels_saved"] == 0 and result["time_saved"] == 0 and result["labels_transfer"] == 64


def test_savings_need_two_curves():
    with pytest.raises(ValueError, match="need a transfer curve and a scratch curve"):
        stats.savings([], curve((8, 0.5, 1.0)))


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0.001, 0.05, stats.HELPS),
        (0.0, 0.05, stats.NO_DIFFERENCE),  # touching zero is not measurable
        (-0.05, 0.0, stats.NO_DIFFERENCE),
        (-0.05, -0.001, stats.NEGATIVE),
        (-0.01, 0.01, stats.NO_DIFFERENCE),
    ],
)
def test_verdict_edges(low, high, expected):
    assert stats.verdict(low, high) == expected


def test_weighted_scores_with_unit_weights_equal_scikit_learn(rng):
    truth = rng.integers(0, 3, 200)
    predicted = np.where(rng.random(200) < 0.7, truth, rng.integers(0, 3, 200))
    ones = np.ones((1, 200))
    assert stats.weighted_scores("classification", truth, predicted, ones)[0] == pytest.approx(
        f1_score(truth, predicted, average="macro")
    )
    values = rng.normal(size=200)
    guesses = values + rng.normal(scale=0.5, size=200)
    assert stats.weighted_scores("regression", values, guesses, ones)[0] == pytest.approx(r2_score(values, guesses))
    tags = rng.integers(0, 2, (200, 4))
    tag_guesses = np.where(rng.random((200, 4)) < 0.8, tags, 1 - tags)
    assert stats.weighted_scores("multilabel", tags, tag_guesses, ones)[0] == pytest.approx(
        f1_score(tags, tag_guesses, average="macro")
    )


def test_weighted_scores_equal_scoring_the_resampled_rows(rng):
    truth = rng.integers(0, 2, 50)
    predicted = np.where(rng.random(50) < 0.8, truth, 1 - truth)
    weights = stats.resample_weights(50, 5, seed=1)
    assert (weights.sum(axis=1) == 50).all()
    for row, score in zip(weights, stats.weighted_scores("classification", truth, predicted, weights), strict=True):
        drawn = np.repeat(np.arange(50), row)
        assert score == pytest.approx(f1_score(truth[drawn], predicted[drawn], average="macro"))


def test_interval_covers_the_middle():
    low, high = stats.interval(np.arange(1001, dtype=float))
    assert (low, high) == pytest.approx((25.0, 975.0))
