"""scikit-learn conformance of TransferClassifier / TransferRegressor.

scikit-learn skips every check for an estimator whose tags say "string input" (ours do, truthfully), so the
suite runs on a subclass that *claims* 2-D numeric input: every check that feeds numbers as X is an expected
failure (listed below with the reason), and the rest must pass. The same contracts (fit returns self,
idempotence, order and subset invariance, no state in ``__init__``...) are then tested on real texts.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

from transferkit import TransferClassifier, TransferRegressor

TEXTS_ONLY = "X must be texts: scikit-learn feeds numeric 2-D arrays"
EXPECTED_NUMERIC_FAILURES = {
    name: TEXTS_ONLY
    for name in (
        "check_fit_score_takes_y",
        "check_estimators_overwrite_params",
        "check_dont_overwrite_parameters",
        "check_estimators_fit_returns_self",
        "check_readonly_memmap_input",
        "check_n_features_in_after_fitting",
        "check_positive_only_tag_during_fit",
        "check_estimators_dtypes",
        "check_dtype_object",
        "check_estimators_empty_data_messages",
        "check_pipeline_consistency",
        "check_estimators_nan_inf",
        "check_estimator_sparse_tag",
        "check_estimator_sparse_array",
        "check_estimator_sparse_matrix",
        "check_estimators_pickle",
        "check_f_contiguous_array_estimator",
        "check_classifier_data_not_an_array",
        "check_classifiers_classes",
        "check_classifiers_train",
        "check_supervised_y_2d",
        "check_decision_proba_consistency",
        "check_methods_sample_order_invariance",
        "check_methods_subset_invariance",
        "check_fit2d_1sample",
        "check_fit2d_1feature",
        "check_dict_unchanged",
        "check_fit_idempotent",
        "check_fit_check_is_fitted",
        "check_n_features_in",
        "check_fit2d_predict1d",
        "check_regressors_train",
        "check_regressor_data_not_an_array",
        "check_regressors_no_decision_function",
        "check_regressors_int",
        "check_complex_data",
        "check_classifiers_one_label",
        "check_classifiers_regression_target",
        "check_requires_y_none",
    )
}


class _NumericTaggedClassifier(TransferClassifier):
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array, tags.input_tags.string = True, False
        return tags


class _NumericTaggedRegressor(TransferRegressor):
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array, tags.input_tags.string = True, False
        return tags


@parametrize_with_checks(
    [
        _NumericTaggedClassifier(backbone="toy-text", strategy="feature-extraction"),
        _NumericTaggedRegressor(backbone="toy-text", strategy="feature-extraction"),
    ],
    expected_failed_checks=lambda estimator: EXPECTED_NUMERIC_FAILURES,
)
def test_sklearn_checks_numeric_suite(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def spam(spam_frame):
    return spam_frame["text"].tolist(), spam_frame["label"].to_numpy()


@pytest.fixture(scope="module")
def fitted(spam):
    texts, labels = spam
    return TransferClassifier(backbone="toy-text", strategy="feature-extraction").fit(texts[:40], labels[:40])


def test_init_stores_parameters_only():
    estimator = TransferClassifier(backbone="toy-text", strategy="finetune", unfreeze_layers=-1)
    assert estimator.get_params()["unfreeze_layers"] == -1
    assert not [k for k in vars(estimator) if k.endswith("_")]


def test_fit_returns_self_and_sets_learned_state(spam):
    texts, labels = spam
    estimator = TransferClassifier(backbone="toy-text", strategy="feature-extraction")
    assert estimator.fit(texts[:30], labels[:30]) is estimator
    assert list(estimator.classes_) == ["ham", "spam"]


def test_unfitted_predict_raises():
    with pytest.raises(NotFittedError):
        TransferClassifier(backbone="toy-text", strategy="feature-extraction").predict(["hello"])


def test_predict_proba_rows_sum_to_one_and_match_predict(fitted, spam):
    texts, _ = spam
    proba = fitted.predict_proba(texts[40:])
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-6)
    assert (fitted.classes_[proba.argmax(1)] == fitted.predict(texts[40:])).all()


def test_order_and_subset_invariance(fitted, spam):
    texts, _ = spam
    test = texts[40:]
    proba = fitted.predict_proba(test)
    order = np.random.default_rng(0).permutation(len(test))
    np.testing.assert_allclose(fitted.predict_proba([test[i] for i in order]), proba[order], atol=1e-5)
    np.testing.assert_allclose(fitted.predict_proba(test[:3]), proba[:3], atol=1e-5)


def test_predict_does_not_change_state(fitted, spam):
    texts, _ = spam
    before = copy.deepcopy(fitted.model_.head.coef)
    fitted.predict(texts[40:])
    np.testing.assert_array_equal(fitted.model_.head.coef, before)


def test_fit_idempotent_and_seeded(spam):
    texts, labels = spam
    first = TransferClassifier(backbone="toy-text", strategy="finetune", epochs=2, random_state=3)
    second = clone(first)
    a = first.fit(texts[:40], labels[:40]).predict_proba(texts[40:])
    b = second.fit(texts[:40], labels[:40]).predict_proba(texts[40:])
    np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(first.fit(texts[:40], labels[:40]).predict_proba(texts[40:]), a, atol=1e-6)


def test_accepts_lists_series_and_one_column_frames(fitted, spam_frame):
    expected = fitted.predict(spam_frame["text"].tolist()[40:])
    assert (fitted.predict(spam_frame["text"][40:]) == expected).all()
    assert (fitted.predict(spam_frame[["text"]][40:]) == expected).all()
    assert (fitted.predict(np.array(spam_frame["text"][40:], dtype=object)) == expected).all()


def test_integer_labels_round_trip(spam):
    texts, labels = spam
    numeric = (labels == "spam").astype(int)
    estimator = TransferClassifier(backbone="toy-text", strategy="feature-extraction").fit(texts[:40], numeric[:40])
    assert estimator.predict(texts[40:]).dtype == numeric.dtype
    assert set(estimator.predict(texts[40:])) <= {0, 1}


@pytest.mark.parametrize(
    ("X", "y", "message"),
    [
        ([[1.0, 2.0], [3.0, 4.0]], [0, 1], "texts"),
        (["a", 3], [0, 1], "item 1 is int"),
        ("just one string", [0], "single string"),
        ([], [], "0 samples"),
        (["a", "b"], None, "requires y"),
        (["a", "b"], [np.nan, 1.0], "NaN"),
        (["a", "b"], ["x", "x"], "single class"),
    ],
)
def test_bad_input_raises_value_error(X, y, message):
    with pytest.raises(ValueError, match=message):
        TransferClassifier(backbone="toy-text", strategy="feature-extraction").fit(X, y)


def test_regressor_continuous_and_classifier_refuses_it(afinn_frame):
    texts, valence = afinn_frame["text"].tolist(), afinn_frame["valence"].to_numpy(float) + 0.5
    regressor = TransferRegressor(backbone="toy-text", strategy="feature-extraction").fit(texts[:60], valence[:60])
    predicted = regressor.predict(texts[60:])
    assert predicted.shape == (30,) and np.isfinite(predicted).all()
    with pytest.raises(ValueError, match="continuous"):
        TransferClassifier(backbone="toy-text", strategy="feature-extraction").fit(texts[:60], valence[:60])


def test_multilabel_indicator_matrix(afinn_frame):
    texts = afinn_frame["text"].tolist()
    Y = np.column_stack([(afinn_frame["valence"] > 0), (afinn_frame["valence"].abs() >= 3)]).astype(int)
    estimator = TransferClassifier(backbone="toy-text", strategy="feature-extraction").fit(texts[:60], Y[:60])
    assert estimator.predict(texts[60:]).shape == (30, 2)
    assert estimator.predict_proba(texts[60:]).shape == (30, 2)


def test_pipeline_cross_val_and_grid_search(spam):
    texts, labels = spam
    pipeline = make_pipeline(
        FunctionTransformer(lambda X: [t.lower() for t in X]),
        TransferClassifier(backbone="toy-text", strategy="feature-extraction"),
    )
    scores = cross_val_score(pipeline, texts, labels, cv=3)
    assert scores.shape == (3,) and ((scores >= 0) & (scores <= 1)).all()
    search = GridSearchCV(
        TransferClassifier(backbone="toy-text", epochs=1), {"strategy": ["feature-extraction", "finetune"]}, cv=2
    )
    search.fit(texts, labels)
    assert search.best_params_["strategy"] in ("feature-extraction", "finetune")


def test_real_minilm_beats_chance_on_spam(spam):
    """The bundled MiniLM with a logistic head separates real spam from ham (40 train / 20 test e-mails)."""
    texts, labels = spam
    estimator = TransferClassifier(strategy="feature-extraction").fit(texts[:40], labels[:40])
    assert estimator.score(texts[40:], labels[40:]) >= 0.75
