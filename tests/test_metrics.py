"""compute_metrics on cases small enough to work out by hand (the arithmetic is in each test)."""

from __future__ import annotations

import json
import math

import pytest

from transferkit.evaluation import compute_metrics, headline_metric, metrics_table


def approx(value: float):
    return pytest.approx(value, abs=1e-6)  # metrics are rounded to 6 decimals


def test_binary_classification():
    truth = ["ham", "ham", "ham", "spam", "spam"]
    pred = ["ham", "spam", "ham", "spam", "ham"]

    m = compute_metrics("classification", truth, pred)

    assert (m["task"], m["n"]) == ("classification", 5)
    assert m["accuracy"] == approx(3 / 5)  # rows 1, 3, 4 right
    # rows = truth, columns = prediction, labels sorted:  ham: 2 ham, 1 spam;  spam: 1 ham, 1 spam
    assert m["confusion_matrix"] == {"labels": ["ham", "spam"], "matrix": [[2, 1], [1, 1]]}
    # ham: predicted 3 times, 2 right -> P = 2/3; 3 true hams, 2 found -> R = 2/3; F1 = 2/3
    # spam: predicted 2 times, 1 right -> P = 1/2; 2 true spams, 1 found -> R = 1/2; F1 = 1/2
    assert m["per_class"]["ham"] == {
        "precision": approx(2 / 3),
        "recall": approx(2 / 3),
        "f1": approx(2 / 3),
        "support": 3,
    }
    assert m["per_class"]["spam"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert m["macro_f1"] == approx((2 / 3 + 1 / 2) / 2)  # 7/12
    assert m["macro_precision"] == approx(7 / 12)
    assert m["macro_recall"] == approx(7 / 12)
    assert m["weighted_f1"] == approx((3 * 2 / 3 + 2 * 1 / 2) / 5)  # 3/5


def test_three_classes():
    truth = ["cat", "cat", "cat", "cat", "dog", "dog", "dog", "bird", "bird", "bird"]
    pred = ["cat", "cat", "dog", "bird", "dog", "dog", "cat", "bird", "bird", "dog"]

    m = compute_metrics("classification", truth, pred)

    assert m["accuracy"] == approx(6 / 10)  # 2 cats, 2 dogs, 2 birds right
    # labels sorted: bird, cat, dog
    # true bird -> bird, bird, dog;  true cat -> cat, cat, dog, bird;  true dog -> dog, dog, cat
    assert m["confusion_matrix"]["labels"] == ["bird", "cat", "dog"]
    assert m["confusion_matrix"]["matrix"] == [[2, 0, 1], [1, 2, 1], [0, 1, 2]]
    # predicted counts (column sums): bird 3, cat 3, dog 4
    # bird: P = 2/3, R = 2/3, F1 = 2/3
    # cat:  P = 2/3, R = 2/4, F1 = 2 * (2/3 * 1/2) / (2/3 + 1/2) = (2/3) / (7/6) = 4/7
    # dog:  P = 2/4, R = 2/3, F1 = 4/7 (same as cat, P and R swapped)
    expected = {
        "bird": (2 / 3, 2 / 3, 2 / 3, 3),
        "cat": (2 / 3, 1 / 2, 4 / 7, 4),
        "dog": (1 / 2, 2 / 3, 4 / 7, 3),
    }
    for label, (precision, recall, f1, support) in expected.items():
        row = m["per_class"][label]
        assert (row["precision"], row["recall"], row["f1"]) == (approx(precision), approx(recall), approx(f1))
        assert row["support"] == support
    assert m["macro_precision"] == approx((2 / 3 + 2 / 3 + 1 / 2) / 3)  # 11/18
    assert m["macro_recall"] == approx((2 / 3 + 1 / 2 + 2 / 3) / 3)  # 11/18
    assert m["macro_f1"] == approx((2 / 3 + 4 / 7 + 4 / 7) / 3)  # 38/63
    assert m["weighted_f1"] == approx((3 * 2 / 3 + 4 * 4 / 7 + 3 * 4 / 7) / 10)  # (2 + 16/7 + 12/7) / 10 = 0.6
    # weighted precision: (3 * 2/3 + 4 * 2/3 + 3 * 1/2) / 10 = (2 + 8/3 + 3/2) / 10 = 37/60
    assert m["weighted_precision"] == approx(37 / 60)


def test_given_classes_set_the_order_and_keep_unseen_ones():
    truth = ["cat", "dog", "dog"]
    pred = ["cat", "dog", "cat"]

    m = compute_metrics("classification", truth, pred, classes=["dog", "cat", "fish"])

    assert m["confusion_matrix"] == {"labels": ["dog", "cat", "fish"], "matrix": [[1, 1, 0], [0, 1, 0], [0, 0, 0]]}
    assert list(m["per_class"]) == ["dog", "cat", "fish"]
    assert m["per_class"]["fish"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    # dog: P = 1/1, R = 1/2, F1 = 2/3;  cat: P = 1/2, R = 1/1, F1 = 2/3;  fish: 0 -> macro over three classes
    assert m["macro_f1"] == approx((2 / 3 + 2 / 3 + 0) / 3)


def test_labels_are_compared_as_strings():
    m = compute_metrics("classification", [1, 0, 1], ["1", "0", "0"])

    assert m["accuracy"] == approx(2 / 3)
    assert m["confusion_matrix"] == {"labels": ["0", "1"], "matrix": [[1, 0], [1, 1]]}


def test_multilabel():
    truth = [["a", "b"], ["b"], ["a", "c"]]
    pred = [["a", "b"], ["b", "c"], ["a"]]

    m = compute_metrics("multilabel", truth, pred)

    # indicator rows (a, b, c): truth 110 / 010 / 101, prediction 110 / 011 / 100
    assert (m["task"], m["n"]) == ("multilabel", 3)
    assert m["subset_accuracy"] == approx(1 / 3)  # only the first row is exactly right
    assert m["hamming_loss"] == approx(2 / 9)  # 2 wrong cells (row 2 c, row 3 c) of 3 x 3
    # pooled: TP = 4 (a twice, b twice), FP = 1 (row 2 c), FN = 1 (row 3 c) -> P = R = F1 = 4/5
    assert m["micro_f1"] == approx(4 / 5)
    # per label: a and b perfect; c predicted once wrongly and missed once -> 0
    assert m["per_class"] == {
        "a": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2},
        "b": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2},
        "c": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
    }
    assert m["macro_f1"] == approx((1 + 1 + 0) / 3)
    assert m["weighted_f1"] == approx((2 * 1 + 2 * 1 + 1 * 0) / 5)
    assert "accuracy" not in m
    assert "confusion_matrix" not in m


def test_regression():
    truth = [3.0, -0.5, 2.0, 7.0]
    pred = [2.5, 0.0, 2.0, 8.0]

    m = compute_metrics("regression", truth, pred)

    # errors: -0.5, 0.5, 0, 1 -> squared 0.25, 0.25, 0, 1
    assert (m["task"], m["n"]) == ("regression", 4)
    assert m["mse"] == approx(1.5 / 4)  # 0.375
    assert m["rmse"] == approx(math.sqrt(0.375))
    assert m["mae"] == approx((0.5 + 0.5 + 0 + 1) / 4)  # 0.5
    # mean truth = 11.5 / 4 = 2.875; total sum of squares = 0.125^2 + 3.375^2 + 0.875^2 + 4.125^2 = 29.1875
    assert m["r2"] == approx(1 - 1.5 / 29.1875)
    assert not {"accuracy", "per_class", "confusion_matrix"} & set(m)


def test_perfect_regression_and_a_single_example():
    assert compute_metrics("regression", [1.0, 2.0, 4.0], [1.0, 2.0, 4.0])["r2"] == 1.0
    single = compute_metrics("regression", [2.0], [3.0])
    assert (single["mse"], single["mae"]) == (1.0, 1.0)
    assert math.isnan(single["r2"])  # undefined with one example


@pytest.mark.parametrize(
    ("task", "truth", "pred"),
    [
        ("classification", ["a", "b", "a"], ["a", "a", "a"]),
        ("multilabel", [["a"], ["a", "b"]], [["a"], ["b"]]),
        ("regression", [1.0, 2.0], [1.5, 2.5]),
    ],
)
def test_metrics_are_plain_json(task, truth, pred):
    m = compute_metrics(task, truth, pred)

    assert json.loads(json.dumps(m, allow_nan=False)) == m  # no numpy scalars, nothing JSON cannot hold


def test_headline_metric():
    assert headline_metric("classification") == ("macro_f1", True)
    assert headline_metric("multilabel") == ("macro_f1", True)
    assert headline_metric("regression") == ("mse", False)


def test_metrics_table_shows_summary_per_class_and_confusion_matrix():
    m = compute_metrics("classification", ["ham", "spam", "spam"], ["ham", "spam", "ham"])

    titles = [str(table.title) for table in metrics_table(m, title="test set")]

    assert titles == ["test set (3 examples)", "per class", "confusion matrix (rows: true, columns: predicted)"]
    assert len(metrics_table(compute_metrics("regression", [1.0, 2.0], [1.0, 2.5]))) == 1
