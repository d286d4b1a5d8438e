"""The n-gram blend (``ngrams="auto"``): a TF-IDF model blended into a text classifier where the rule says so,
carried through the model folder, the ONNX export (fp32 and int8) and explanations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import synthetic
import transferkit as tk
from transferkit import FitConfig
from transferkit.cli import app
from transferkit.errors import TransferKitError
from transferkit.explain import ExplainError
from transferkit.strategies import ngrams
from transferkit.strategies.fit import fit_model


def keyword_texts(n: int, seed: int, keyword: str = "zebra") -> tuple[list[str], list[str]]:
    """Six random words of ten; every second text also holds ``keyword`` (label "pos")."""
    return synthetic.keyword_texts(n, seed, keyword, words=6, filler=10)


def fit(texts, labels, backbone="toy-text", strategy="feature-extraction", task="classification", **settings):
    config = FitConfig.from_settings(strategy=strategy, quiet=True, seed=0, **settings)
    return fit_model(texts, labels, task=task, backbone=backbone, config=config)


@pytest.fixture(scope="module")
def keyword_model():
    """The toy backbone reads characters and misses the keyword; the n-grams see it: the rule blends."""
    texts, labels = keyword_texts(40, seed=0)
    return fit(texts, labels)


def test_the_rule_blends_where_ngrams_come_close_and_scores_are_the_weighted_sum(keyword_model):
    model = keyword_model
    facts = model.info["ngrams"]
    measured = facts["cross_validated_macro_f1"]
    assert measured["ngrams"] >= ngrams.SHARE * measured["embeddings"] and measured["ngrams"] > 0.9
    assert facts["weight"] == ngrams.WEIGHT and model.ngrams is not None
    texts, _ = keyword_texts(10, seed=1)
    head = model.head.scores(model.backbone.encode(texts))
    tfidf = model.ngrams.head.scores(model.ngrams.features.encode(texts))
    np.testing.assert_allclose(model.scores(texts), 0.5 * head + 0.5 * tfidf, rtol=1e-5, atol=1e-6)
    assert model.predict(texts) == ["pos" if "zebra" in t else "neg" for t in texts]


def test_ngrams_below_the_share_are_left_out_with_the_reason(keyword_model):
    assert ngrams.left_out(0.3, 0.3) is None and ngrams.left_out(0.8, 1.0) is None
    assert ngrams.left_out(0.7, 0.9) == "below 80% of the embeddings'"
    assert "why" not in keyword_model.info["ngrams"]  # blended: nothing to explain


@pytest.mark.parametrize("name", ["spam-assassin", "fortune-topics"])
def test_the_kernel_factor_gives_the_same_logistic_regression_as_the_features(name):
    """Fewer rows than n-gram columns: the C search runs on the rows' kernel factor; the same C, CV scores and
    weights as scikit-learn's search on the features themselves (2 and 8 classes of real texts)."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold

    from transferkit.data import load_labeled
    from transferkit.heads import CS, cross_validated_logistic
    from transferkit.strategies.scratch.tfidf import TfidfFeatures

    data = load_labeled(name)
    target = np.unique(data.y, return_inverse=True)[1]
    rows = np.concatenate([np.flatnonzero(target == label)[:8] for label in np.unique(target)])
    X, target = TfidfFeatures().fit_transform([data.inputs[i] for i in rows]), target[rows]
    folds = StratifiedKFold(4, shuffle=True, random_state=0)
    head, score = cross_validated_logistic(X, target, folds, seed=0)
    assert X.shape[0] < X.shape[1]
    direct = LogisticRegressionCV(Cs=CS, cv=folds, max_iter=3000, random_state=0).fit(X, target)
    assert head.info["C"] == direct.C_[0]
    assert score == pytest.approx(next(iter(direct.scores_.values())).mean(axis=0).max())
    np.testing.assert_allclose(head.coef, direct.coef_, atol=1e-3)
    np.testing.assert_allclose(head.scores(X), direct.decision_function(X).reshape(len(rows), -1), atol=1e-3)


def test_off_and_the_cases_never_blended_say_why(afinn_frame):
    texts, labels = keyword_texts(40, seed=0)
    off = fit(texts, labels, ngrams="off")
    assert off.ngrams is None and off.info["ngrams"] == {"weight": 0.0, "why": "ngrams='off'"}
    calibrated = fit(texts, labels, calibrate=True)
    assert calibrated.ngrams is None and "calibration" in calibrated.info["ngrams"]["why"]
    words = afinn_frame["text"].tolist()
    regression = fit(words, afinn_frame["valence"].tolist(), task="regression")
    assert regression.ngrams is None and "not regression" in regression.info["ngrams"]["why"]
    tags = [[s] for s in afinn_frame["sentiment"]]
    multilabel = fit(words, tags, task="multilabel")
    assert multilabel.ngrams is None and "not multilabel" in multilabel.info["ngrams"]["why"]
    scratch = fit(texts, labels, backbone=None, strategy="tfidf-lr")  # n-grams already: nothing to blend
    assert scratch.ngrams is None and "ngrams" not in scratch.info


def test_the_rule_leaves_ngrams_out_where_they_lag(minilm):
    """Labels that follow meaning, not spelling: each class is a topic written in words no other text shares."""
    topics = {
        "animals": ["dog", "cat", "horse", "cow", "sheep", "goat", "lion", "tiger", "wolf", "bear", "mouse", "rabbit"],
        "vehicles": ["car", "truck", "bus", "train", "bicycle", "airplane", "boat", "tram", "scooter", "van",
                     "motorcycle", "ship"],
    }  # fmt: skip
    texts = [word for words in topics.values() for word in words]
    labels = [label for label, words in topics.items() for _ in words]
    model = fit(texts, labels, backbone=minilm)
    measured = model.info["ngrams"]["cross_validated_macro_f1"]
    assert measured["embeddings"] > 0.9 and measured["ngrams"] < 0.7
    assert model.ngrams is None and model.info["ngrams"]["weight"] == 0.0


@pytest.mark.parametrize(
    "settings",
    [{"strategy": "feature-extraction"}, {"strategy": "finetune", "epochs": 1}, {"strategy": "contrastive",
     "contrastive_steps": 4}],
    ids=["frozen", "finetuned", "contrastive"],
)  # fmt: skip
def test_blended_models_save_load_and_export_with_the_same_probabilities(settings, tmp_path):
    pytest.importorskip("onnxruntime", reason="needs the deploy extra: pip install -e '.[deploy]'")
    texts, labels = keyword_texts(40, seed=0)
    model = fit(texts, labels, **settings)
    assert model.ngrams is not None
    test = keyword_texts(12, seed=2)[0] + ["", "zebra", "Ünïcödé zebra 🙂"]
    tk.save(model, tmp_path / "folder")
    assert {"ngrams.safetensors", "ngrams.json"} <= {p.name for p in (tmp_path / "folder").iterdir()}
    loaded = tk.load(tmp_path / "folder")
    np.testing.assert_allclose(loaded.predict_proba(test), model.predict_proba(test), atol=1e-6)
    manifest = model.export(tmp_path / "fp32")
    assert manifest["inputs"]["ngrams"] is True and manifest["export"]["max_probability_difference"] < 1e-4
    exported = tk.load(tmp_path / "fp32")
    np.testing.assert_allclose(exported.predict_proba(test), model.predict_proba(test), atol=1e-5)
    model.export(tmp_path / "int8", quantize="int8", test=(texts, labels))
    int8 = tk.load(tmp_path / "int8")
    assert np.mean(np.array(int8.predict(test)) == np.array(model.predict(test))) >= 0.9


def test_explanations_of_a_blended_model_use_occlusion_and_find_the_keyword(keyword_model):
    texts, labels = keyword_texts(10, seed=3)
    positives = [t for t, label in zip(texts, labels, strict=True) if label == "pos"]
    explanations = keyword_model.explain(positives)
    assert {e.method for e in explanations} == {"occlusion"}
    assert all(e.top(1)[0][0] == "zebra" for e in explanations)
    with pytest.raises(ExplainError, match=r"n-gram blend.*method='occlusion'"):
        keyword_model.explain(positives[:1], method="integrated-gradients")


def test_the_real_minilm_blends_on_spam_end_to_end(spam_csv, tmp_path):
    """The bundled MiniLM from a file through the CLI: the rule is measured, said and saved in the folder."""
    result = CliRunner().invoke(
        app, ["fit", spam_csv, "--backbone", "minilm", "--strategy", "feature-extraction", "--output",
              str(tmp_path / "model")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "n-grams: cross-validated macro-F1" in result.output
    model = tk.load(tmp_path / "model")
    facts = model.info["ngrams"]
    measured = facts["cross_validated_macro_f1"]
    why = ngrams.left_out(measured["ngrams"], measured["embeddings"])
    assert (model.ngrams is None) == (why is not None) and facts.get("why") == why
    texts = pd.read_csv(spam_csv)["text"].tolist()[:5]
    assert len(model.predict(texts)) == 5


def test_a_bad_ngrams_value_is_one_line(spam_csv, tmp_path):
    with pytest.raises(TransferKitError, match=r"ngrams.*'auto', 'off'|ngrams.*auto, off"):
        FitConfig(ngrams="always")
    result = CliRunner().invoke(app, ["fit", spam_csv, "--ngrams", "always", "--output", str(tmp_path / "m")])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert "ngrams" in result.output and not (tmp_path / "m").exists()
