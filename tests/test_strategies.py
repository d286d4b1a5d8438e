"""Every strategy on every task, on the toy backbone (mechanics) and on the real bundled MiniLM (quality)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from transferkit import FitConfig, TransferKitError
from transferkit.backbones import create_backbone
from transferkit.evaluation import compute_metrics
from transferkit.strategies import body as body_module
from transferkit.strategies.body import trainable_blocks
from transferkit.strategies.finetune import train as finetune_module
from transferkit.strategies.fit import fit_model
from transferkit.strategies.registry import STRATEGIES as REGISTERED

STRATEGIES = REGISTERED.names(kind="transfer") + REGISTERED.names(kind="meta")
TASKS = ["binary", "multiclass", "multilabel", "regression"]


@pytest.fixture(scope="module")
def data(spam_frame, spam_groups_frame, afinn_frame, multilabel_frame):
    return {"spam": spam_frame, "groups": spam_groups_frame, "afinn": afinn_frame, "multilabel": multilabel_frame}


def task_data(name, data):
    """(texts, labels, task) for each task, from real data."""
    if name == "binary":
        return data["spam"]["text"].tolist(), data["spam"]["label"].tolist(), "classification"
    if name == "multiclass":
        return data["groups"]["text"].tolist(), data["groups"]["category"].tolist(), "classification"
    afinn_frame, multilabel_frame = data["afinn"], data["multilabel"]
    if name == "multilabel":
        return multilabel_frame["text"].tolist(), [t.split("|") for t in multilabel_frame["tags"]], "multilabel"
    return afinn_frame["text"].tolist(), afinn_frame["valence"].astype(float).tolist(), "regression"


def baseline(task, train_y, test_y, classes):
    """Score of the best constant prediction, the bar a real model must clear."""
    if task == "regression":
        return compute_metrics(task, test_y, [float(np.mean(train_y))] * len(test_y))["r2"]
    if task == "multilabel":
        counts = Counter(label for row in train_y for label in row)
        frequent = [label for label, c in counts.items() if c > len(train_y) / 2]
        return compute_metrics(task, test_y, [frequent] * len(test_y), classes)["micro_f1"]
    majority = Counter(train_y).most_common(1)[0][0]
    return compute_metrics(task, test_y, [majority] * len(test_y), classes)["macro_f1"]


# The binary auto cases cross-validate fine-tuning and TF-IDF (LogisticRegressionCV per fold: 1-2 minutes each);
# they run with `-m slow`. The default suite keeps real-MiniLM auto on binary spam through the CLI
# (test_cli.py::test_default_real_backbone_auto_fit_and_predict) and the other tasks' auto cases here.
TASK_OF = {"binary": "classification", "multiclass": "classification", "multilabel": "multilabel",
           "regression": "regression"}  # fmt: skip
CASES = [
    pytest.param(task, strategy, marks=pytest.mark.slow) if (task, strategy) == ("binary", "auto") else (task, strategy)
    for task in TASKS
    for strategy in STRATEGIES
    if TASK_OF[task] in REGISTERED.get(strategy).tasks
]
# On the real MiniLM, contrastive training runs once per task in the default suite (multi-class); its binary and
# multi-label cases run with `-m slow` (the toy backbone covers their mechanics).
REAL_CASES = [
    pytest.param(*case, marks=pytest.mark.slow)
    if case in (("binary", "contrastive"), ("multilabel", "contrastive")) else case
    for case in CASES
]  # fmt: skip


@pytest.mark.parametrize(("task_name", "strategy"), CASES)
def test_every_strategy_and_task_on_toy_backbone(strategy, task_name, data):
    texts, y, task = task_data(task_name, data)
    config = FitConfig(strategy=strategy, epochs=2, quiet=True)
    model = fit_model(texts[:45], y[:45], task=task, backbone="toy-text", config=config)
    predicted = model.predict(texts[45:])
    assert len(predicted) == len(texts) - 45
    if task == "regression":
        assert np.isfinite(predicted).all()
    elif task == "multilabel":
        assert all(set(row) <= set(model.classes) for row in predicted)
        assert model.predict_proba(texts[45:]).shape == (len(predicted), len(model.classes))
    else:
        assert set(predicted) <= set(model.classes)
        np.testing.assert_allclose(model.predict_proba(texts[45:]).sum(1), 1.0, atol=1e-6)
    expected = "feature-extraction" if strategy == "feature-extraction" else None
    assert model.strategy == (expected or model.strategy)
    if strategy == "auto":
        assert model.info["auto"]["chosen"] in ("feature-extraction", "finetune", "contrastive", "tfidf-lr")
        assert model.info["auto"]["reason"]


@pytest.mark.parametrize(("task_name", "strategy"), REAL_CASES)
def test_every_strategy_and_task_on_real_minilm_beats_constant(strategy, task_name, data):
    """Real pre-trained features must beat the best constant prediction on held-out real data."""
    texts, y, task = task_data(task_name, data)
    cut = 2 * len(texts) // 3
    config = FitConfig(strategy=strategy, epochs=3, quiet=True)
    model = fit_model(texts[:cut], y[:cut], task=task, backbone="minilm", config=config)
    metrics = compute_metrics(task, y[cut:], model.predict(texts[cut:]), model.classes or None)
    name = {"regression": "r2", "multilabel": "micro_f1"}.get(task, "macro_f1")
    assert metrics[name] > baseline(task, y[:cut], y[cut:], model.classes or None)


@pytest.mark.parametrize("head", ["logistic", "mlp"])
def test_feature_extraction_heads(head, spam_frame):
    texts, y = spam_frame["text"].tolist(), spam_frame["label"].tolist()
    config = FitConfig(strategy="feature-extraction", head=head, quiet=True)
    model = fit_model(texts[:40], y[:40], task="classification", backbone="minilm", config=config)
    assert model.info["head"] == head
    assert compute_metrics("classification", y[40:], model.predict(texts[40:]))["accuracy"] >= 0.75


def _parameters(backbone):
    return {name: p.detach().clone() for name, p in backbone.module.named_parameters()}


@pytest.mark.parametrize("unfreeze", [1, 2, -1])
def test_finetune_trains_only_the_top_blocks(unfreeze, spam_frame):
    backbone = create_backbone("toy-text")
    before = _parameters(backbone)
    texts, y = spam_frame["text"].tolist(), spam_frame["label"].tolist()
    model = fit_model(
        texts,
        y,
        task="classification",
        backbone=backbone,
        config=FitConfig(strategy="finetune", unfreeze_layers=unfreeze, epochs=1, quiet=True),
    )
    after = _parameters(model.backbone)
    blocks = trainable_blocks(model.backbone, unfreeze)
    trained = {id(p) for b in blocks for p in model.backbone.block_parameters(b)}
    names = {id(p): n for n, p in model.backbone.module.named_parameters()}
    moved = {n for n in after if not torch.equal(after[n], before[n])}
    assert moved and moved <= {names[i] for i in trained}
    assert set(model.finetuned) == {names[i] for i in trained}
    assert torch.equal(
        _parameters(backbone)["embeddings.word_embeddings.weight"], before["embeddings.word_embeddings.weight"]
    )  # the caller's backbone is untouched
    if unfreeze == -1:
        assert "embeddings.word_embeddings.weight" in moved


def test_l2sp_keeps_weights_closer_to_pretrained(spam_frame):
    texts, y = spam_frame["text"].tolist(), spam_frame["label"].tolist()
    start = _parameters(create_backbone("toy-text"))

    def distance(l2sp):
        config = FitConfig(strategy="finetune", l2sp=l2sp, weight_decay=0.0, epochs=2, learning_rate=1e-3, quiet=True)
        model = fit_model(texts, y, task="classification", backbone="toy-text", config=config)
        after = _parameters(model.backbone)
        return sum(float((after[n] - start[n]).pow(2).sum()) for n in model.finetuned)

    assert distance(100.0) < 0.5 * distance(0.0)


def test_discriminative_learning_rates(spam_frame, monkeypatch):
    seen = {}
    original = torch.optim.AdamW

    def spy(groups, *args, **kwargs):
        seen["lrs"] = [group["lr"] for group in groups]
        return original(groups, *args, **kwargs)

    monkeypatch.setattr(finetune_module.torch.optim, "AdamW", spy)
    texts, y = spam_frame["text"].tolist(), spam_frame["label"].tolist()
    fit_model(
        texts,
        y,
        task="classification",
        backbone="toy-text",
        config=FitConfig(
            strategy="finetune",
            unfreeze_layers=2,
            learning_rate=1e-4,
            layer_decay=0.5,
            head_learning_rate=1e-2,
            epochs=1,
            quiet=True,
        ),
    )
    assert seen["lrs"] == pytest.approx([0.5e-4, 1e-4, 1e-2])


def test_cached_frozen_prefix_gives_the_same_model_as_recomputing_it(spam_frame, monkeypatch):
    texts, y = spam_frame["text"].tolist(), spam_frame["label"].tolist()
    config = FitConfig(strategy="finetune", epochs=2, quiet=True)
    cached = fit_model(texts[:40], y[:40], task="classification", backbone="toy-text", config=config)
    monkeypatch.setattr(body_module, "PREFIX_CACHE_LIMIT_BYTES", 0)
    recomputed = fit_model(texts[:40], y[:40], task="classification", backbone="toy-text", config=config)
    assert cached.info["frozen_prefix_cached"] and not recomputed.info["frozen_prefix_cached"]
    np.testing.assert_allclose(cached.predict_proba(texts[40:]), recomputed.predict_proba(texts[40:]), atol=1e-5)


def test_early_stopping_keeps_the_best_epoch(spam_frame):
    texts, y = spam_frame["text"].tolist(), spam_frame["label"].tolist()
    model = fit_model(
        texts,
        y,
        task="classification",
        backbone="toy-text",
        config=FitConfig(strategy="finetune", epochs=12, patience=1, quiet=True),
    )
    history = model.info["history"]
    best = max(record["score"] for record in history)
    kept = history[model.info["best_epoch"] - 1]["score"]
    assert kept >= best - 1e-4  # improvements below EarlyStopping.min_delta do not count
    assert model.info["epochs_run"] == len(history) <= 12
    if model.info["epochs_run"] < 12:  # stopped early: the epoch after the best did not improve
        assert history[-1]["score"] <= kept + 1e-4


def test_auto_skips_finetuning_beyond_the_time_budget(spam_frame):
    # 80 characters per e-mail: the TF-IDF arm's cross-validated C costs a minute on the full 300
    texts, y = [text[:80] for text in spam_frame["text"]], spam_frame["label"].tolist()
    model = fit_model(
        texts,
        y,
        task="classification",
        backbone="toy-text",
        config=FitConfig.from_settings(strategy="auto", time_budget=0.001, quiet=True),
    )
    assert model.strategy != "finetune" and model.info["auto"]["chosen"] in ("feature-extraction", "tfidf-lr")
    assert "time budget" in model.info["auto"]["reason"] and "finetune" not in model.info["auto"]["scores"]


def test_fit_is_deterministic_with_a_seed(spam_frame):
    texts, y = spam_frame["text"].tolist(), spam_frame["label"].tolist()
    config = FitConfig(strategy="finetune", epochs=2, seed=7, quiet=True)
    first = fit_model(texts[:40], y[:40], task="classification", backbone="toy-text", config=config)
    second = fit_model(texts[:40], y[:40], task="classification", backbone="toy-text", config=config)
    np.testing.assert_array_equal(first.predict_proba(texts[40:]), second.predict_proba(texts[40:]))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"strategy": "magic"}, "strategy must be one of"),
        ({"unfreeze_layers": 0}, "unfreeze_layers must be -1"),
        ({"layer_decay": 0}, "layer_decay must be in"),
        ({"head": "forest"}, "head must be one of"),
        ({"validation_fraction": 0.9}, "validation_fraction"),
    ],
)
def test_bad_settings_name_the_value_and_the_fix(settings, message):
    with pytest.raises(TransferKitError, match=message):
        FitConfig(**settings)


def test_auto_below_the_minimum_per_class_uses_the_few_shot_choice_and_says_why(spam_frame):
    """8 labels per class: no comparison is trusted; texts on a backbone that can train get contrastive training
    (what measured best at that size), within the time budget; otherwise the frozen head. The reason says which."""
    from transferkit.strategies.auto.fit import AUTO_MIN_PER_CLASS, FEW_SHOT

    frame = spam_frame.groupby("label").head(8)
    texts, labels = frame["text"].tolist(), frame["label"].tolist()
    model = fit_model(texts, labels, task="classification", backbone="toy-text",
                      config=FitConfig.from_settings(strategy="auto", quiet=True, contrastive_steps=4))  # fmt: skip
    assert model.strategy == FEW_SHOT["text"] == "contrastive" and model.finetuned
    assert model.info["auto"]["per_class"] == 8 < AUTO_MIN_PER_CLASS
    assert f"below {AUTO_MIN_PER_CLASS}" in model.info["auto"]["reason"] and "scores" not in model.info["auto"]
    hurried = fit_model(texts, labels, task="classification", backbone="toy-text",
                        config=FitConfig.from_settings(strategy="auto", quiet=True, time_budget=0.001))  # fmt: skip
    assert hurried.strategy == "feature-extraction" and not hurried.finetuned
    assert "contrastive skipped" in hurried.info["auto"]["reason"]
    inference_only = fit_model(texts, labels, task="classification", backbone="e5-small",
                               config=FitConfig(strategy="auto", quiet=True))  # fmt: skip
    assert inference_only.strategy == "feature-extraction"
    assert inference_only.info["auto"]["reason"].startswith("feature-extraction: with 8 labeled examples per class")


@pytest.mark.parametrize("present", [["a", "c", "d"], ["b", "d"]])
def test_linear_head_keeps_every_class_when_some_are_absent(present):
    """A probe fitted where some classes have no example (a few-shot validation split) still has one output per
    class, and never predicts the absent ones."""
    from transferkit.heads import fit_linear_head
    from transferkit.targets import TargetEncoder

    encoder = TargetEncoder.fit(["a", "b", "c", "d"], "classification")
    y = present * 5
    X = np.random.default_rng(0).normal(size=(len(y), 4)) + np.array([encoder.classes.index(v) for v in y])[:, None]
    scores = fit_linear_head(X, encoder.encode(y), encoder).scores(X)
    predicted = [encoder.classes[i] for i in scores.argmax(1)]
    assert scores.shape == (len(y), 4) and set(predicted) <= set(present)
    assert np.mean([p == t for p, t in zip(predicted, y, strict=True)]) > 0.8


def test_finetune_with_two_examples_per_class_trains_on_all_of_them():
    """Ten classes of two: no split can hold out examples without removing a class, so none is held out."""
    texts = [f"{word} {i}" for word in "abcdefghij" for i in range(2)]
    labels = [text[0] for text in texts]
    config = FitConfig(strategy="finetune", epochs=1, quiet=True)
    model = fit_model(texts, labels, task="classification", backbone="toy-text", config=config)
    assert model.info["validation_score"] is None and len(model.classes) == 10


@pytest.mark.parametrize(("recipe", "held", "where"), [("top", 12, "the part contrastive held out to stop early on"),
                                                     ("full", 20, "a held-out third")])  # fmt: skip
def test_auto_from_16_per_class_challenges_the_few_shot_choice_on_a_held_out_part(spam_frame, recipe, held, where):
    """30 labels per class: contrastive and the frozen head and TF-IDF are scored on the same held-out part (the
    fifth contrastive's top recipe holds out itself, trained once; else a third, contrastive fitted on two thirds);
    a cheap arm replaces it only when it wins there beyond the margin and bootstrap error. Each e-mail ends with a
    word that gives its class away, beyond the 64 tokens the random toy backbone reads: without the n-gram blend
    TF-IDF reads it and wins by far (such a small part catches only gross failures); the body given is back to its
    weights."""
    from transferkit.strategies.auto.fit import AUTO_MARGIN, HOLDOUT_MAX_PER_CLASS

    labels = spam_frame["label"].tolist()
    texts = [
        text[:200] + (" qqzx" if label == "spam" else " wwvy")
        for text, label in zip(spam_frame["text"], labels, strict=True)
    ]
    backbone = create_backbone("toy-text")
    before = {name: value.clone() for name, value in backbone.module.state_dict().items()}
    config = FitConfig.from_settings(strategy="auto", quiet=True, contrastive_steps=4, contrastive_recipe=recipe,
                                     ngrams="off")  # fmt: skip
    model = fit_model(texts, labels, task="classification", backbone=backbone, config=config)
    auto = model.info["auto"]
    assert auto["per_class"] == 30 < HOLDOUT_MAX_PER_CLASS and auto["holdout"] == held
    assert set(auto["scores"]) == {"contrastive", "feature-extraction", "tfidf-lr"}
    assert model.strategy == auto["chosen"] == "tfidf-lr"
    assert auto["scores"]["tfidf-lr"] - auto["scores"]["contrastive"] > AUTO_MARGIN
    assert where in auto["reason"] and "transfer did not pay" in auto["reason"]
    assert all(torch.equal(before[name], value) for name, value in backbone.module.state_dict().items())


def test_auto_scores_the_transfer_arms_blended_where_their_models_get_the_ngram_blend(spam_frame):
    """The same data with the n-gram blend on (the default): the contrastive and frozen-head models will carry the
    TF-IDF model that reads the give-away word, so their held-out scores are blended with its scores before the
    contest, as the models will score; TF-IDF alone no longer beats them by the margin."""
    from transferkit.strategies.auto.fit import NGRAM_ARM

    labels = spam_frame["label"].tolist()
    texts = [
        text[:200] + (" qqzx" if label == "spam" else " wwvy")
        for text, label in zip(spam_frame["text"], labels, strict=True)
    ]
    config = FitConfig.from_settings(strategy="auto", quiet=True, contrastive_steps=4)
    model = fit_model(texts, labels, task="classification", backbone="toy-text", config=config)
    auto, weight = model.info["auto"], model.info["ngrams"]["weight"]
    assert weight > 0 and model.ngrams is not None
    assert f"scored blended with the {NGRAM_ARM} n-grams at {weight:g}" in auto["reason"]
    assert auto["chosen"] != NGRAM_ARM and model.strategy == auto["chosen"]
    off = FitConfig.from_settings(strategy="auto", quiet=True, contrastive_steps=4, ngrams="off")
    unblended = fit_model(texts, labels, task="classification", backbone="toy-text", config=off)
    assert "scored blended" not in unblended.info["auto"]["reason"]
    assert unblended.info["auto"]["scores"]["contrastive"] < auto["scores"]["contrastive"]


@pytest.mark.parametrize(("budget", "contest"), [(150, "holdout"), (1000, "folds")])
def test_auto_holds_out_a_part_when_cross_validating_contrastive_would_not_fit(
    spam_frame, monkeypatch, budget, contest
):
    """From HOLDOUT_MAX_PER_CLASS labels per class (lowered to 24 here: the e-mails hold 30 per class) the full
    contest cross-validates contrastive (3 folds and the refit, 4 runs) when the time budget covers that; when it
    covers only one run, contrastive is scored on the part it holds out (as from 16 per class) instead of being
    left out, where the frozen head would win by default. The estimate is pinned (seconds = examples trained) so
    that the budget decides, not this machine's speed."""
    from transferkit.strategies.auto import fit as auto_fit

    monkeypatch.setattr(auto_fit, "_estimate_seconds", lambda backbone, inputs, work, blocks, config: float(work))
    monkeypatch.setattr(auto_fit, "HOLDOUT_MAX_PER_CLASS", 24)
    frame = spam_frame
    config = FitConfig.from_settings(strategy="auto", quiet=True, contrastive_steps=4, time_budget=budget)
    model = fit_model(frame["text"].tolist(), frame["label"].tolist(), task="classification", backbone="toy-text",
                      config=config)  # fmt: skip
    auto = model.info["auto"]
    assert auto["per_class"] == 30 >= auto_fit.HOLDOUT_MAX_PER_CLASS and contest in auto
    assert "contrastive" in auto["scores"]
    too_long = "cross-validating contrastive (3 folds and the refit) would take ~256s and the time budget leaves"
    if contest == "holdout":  # one run: 4 steps of 16 examples
        assert auto["holdout"] == 12 and too_long in auto["reason"] and "fine-tuning is not measured" in auto["reason"]
    else:
        assert auto["folds"] == 3 and too_long not in auto["reason"]


def test_a_held_out_fit_that_trains_the_body_puts_the_weights_back(spam_frame):
    from transferkit.strategies.auto.fit import _held_scores
    from transferkit.strategies.common import FitRun
    from transferkit.targets import TargetEncoder

    texts, labels = spam_frame["text"].tolist()[:24], spam_frame["label"].tolist()[:24]
    encoder = TargetEncoder.fit(labels, "classification")
    backbone = create_backbone("toy-text")
    before = {name: value.clone() for name, value in backbone.module.state_dict().items()}
    run = FitRun(inputs=texts, target=encoder.encode(labels), encoder=encoder, backbone=backbone,
                 config=FitConfig.from_settings(contrastive_steps=4, quiet=True), fit_part=np.arange(24))  # fmt: skip
    scores = _held_scores("contrastive", run, np.arange(16), np.arange(16, 24))
    assert scores.shape == (8, 1) and np.isfinite(scores).all()  # binary: one logit
    after = backbone.module.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)
