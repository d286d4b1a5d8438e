"""Domain adaptation: the methods on synthetic shifts, ``fit --unlabeled`` end to end on real backbones, the saved
model predicting the adapted way after loading, and one-line errors for what adaptation cannot do."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import RepeatedStratifiedKFold
from typer.testing import CliRunner

import transferkit as tk
from transferkit.adaptation.adabn import adabn, batch_norm_layers
from transferkit.adaptation.alignment import coral, subspace_alignment
from transferkit.adaptation.heads import compose
from transferkit.adaptation.selection import RidgeScores, choose, reverse_score, reverse_validation
from transferkit.adaptation.self_training import class_probabilities, confident_pseudo_labels, self_train
from transferkit.backbones import create_backbone
from transferkit.cli import app
from transferkit.config import FitConfig
from transferkit.datasets import load_builtin
from transferkit.errors import TransferKitError
from transferkit.heads import LinearHead, MLPHead
from transferkit.strategies.adapt import train
from transferkit.strategies.fit import fit_model


def fit_one(X: np.ndarray, y: np.ndarray) -> LinearHead:
    model = LogisticRegression(max_iter=2000).fit(X, y)
    return LinearHead(model.coef_, model.intercept_)


def macro_f1(head, X, y) -> float:
    return f1_score(y, class_probabilities(head.scores(X)).argmax(1), average="macro")


def gaussians(seed: int, n: int, shifted: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Three Gaussian classes in 10-d; the target domain rescales three axes (x0.3, x3) and moves every axis by 2.5
    (a sensor with other gains and offset): a head trained on the source mislabels most of it."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = np.eye(3, 10)[y] * 3 + rng.normal(size=(n, 10))
    if shifted:
        X = X * np.array([0.3, 3.0, 1.0] + [1.0] * 7) + 2.5
    return X, y


@pytest.mark.parametrize("seed", [0, 1])
def test_coral_recovers_a_rescaled_and_moved_gaussian_shift(seed):
    source, labels = gaussians(seed, 300)
    target, truth = gaussians(seed + 10, 600, shifted=True)
    alone = macro_f1(fit_one(source, labels), target, truth)
    aligned = macro_f1(fit_one(coral(source, target).source(source), labels), target, truth)
    assert alone < 0.75 and aligned > 0.88, (alone, aligned)


def test_subspace_alignment_folds_into_linear_and_mlp_heads_that_read_raw_features(rng):
    source, labels = gaussians(0, 200)
    target, _ = gaussians(1, 300, shifted=True)
    alignment = subspace_alignment(source, target, dimensions=4)
    assert alignment.source_matrix.shape == alignment.target_matrix.shape == (10, 4)
    linear = fit_one(alignment.source(source), labels)
    mlp = MLPHead(4, 3)
    for head in (linear, mlp):
        composed = compose(head, alignment.target_matrix, alignment.target_offset)
        expected = head.scores(alignment.target(target).astype(np.float32))
        np.testing.assert_allclose(composed.scores(target.astype(np.float32)), expected, rtol=1e-4, atol=1e-4)


def test_self_training_gains_on_a_moved_toy_and_pseudo_labels_are_class_balanced():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [4.0, 0.0]])
    labels = rng.integers(0, 2, 200)
    source = centres[labels] + rng.normal(scale=0.8, size=(200, 2))
    truth = rng.integers(0, 2, 400)
    target = centres[truth] + [1.6, 1.5] + rng.normal(scale=0.8, size=(400, 2))  # moved toward the other class
    alone = macro_f1(fit_one(source, labels), target, truth)
    head, used = self_train(source, labels, target, fit_one)
    assert macro_f1(head, target, truth) > alone + 0.05 and used == sorted(used)
    probabilities = np.array([[0.9, 0.1]] * 8 + [[0.4, 0.6]] * 2 + [[0.2, 0.8]])
    indices, pseudo = confident_pseudo_labels(probabilities, fraction=0.4)
    assert sorted(pseudo.tolist()) == [0, 0, 1, 1]  # 2 per class although class 0 is predicted 8 times of 11
    assert set(indices[pseudo == 1]) == {10, 8} or set(indices[pseudo == 1]) == {10, 9}


def _methods(name):
    """A method as auto measures it: the closed-form ridge classifier stands in for the head."""
    return lambda S, y, T: train(name, S, y, T, lambda X, labels: RidgeScores(X, labels, 3))[0].scores


def test_reverse_validation_picks_coral_on_a_shift_and_source_only_without_one():
    source, labels = gaussians(0, 300)
    splits = list(RepeatedStratifiedKFold(n_splits=3, n_repeats=3, random_state=0).split(source, labels))  # as auto
    names = ("none", "coral", "subspace", "self-training")
    shifted, _ = gaussians(5, 600, shifted=True)
    results = {n: reverse_validation(_methods(n), source, labels, shifted, splits, f1_of) for n in names}
    assert choose(results)[0] != "none", results
    same, _ = gaussians(6, 600)  # no shift: nothing to gain, keep source-only
    results = {n: reverse_validation(_methods(n), source, labels, same, splits, f1_of) for n in names}
    chosen, reason = choose(results)
    assert chosen == "none" and reason.startswith("source-only"), (results, reason)


def f1_of(scores, truth):
    return f1_score(truth, class_probabilities(scores).argmax(1), average="macro")


def test_reverse_score_rewards_pseudo_labels_that_lead_back_to_the_source_labels():
    source, labels = gaussians(0, 300)
    target, truth = gaussians(1, 300)
    backward = _methods("none")
    right = np.eye(3)[truth] * 5  # forward scores that label the target correctly
    swapped = np.eye(3)[(truth + 1) % 3] * 5  # ... and with every class renamed
    scores = [reverse_score(backward, forward, target, source, labels, f1_of) for forward in (right, swapped)]
    assert scores[0] > 0.9 and scores[1] < 0.1, scores
    collapsed = reverse_score(backward, np.tile([0.0, 5.0, 0.0], (300, 1)), target, source, labels, f1_of)
    assert collapsed == pytest.approx(f1_of(np.tile([0.0, 1.0, 0.0], (300, 1)), labels))  # one class: said everywhere


def test_choose_keeps_source_only_when_adaptation_hurts():
    results = {"none": np.array([0.8, 0.82, 0.81]), "coral": np.array([0.7, 0.72, 0.69])}
    assert choose(results) == ("none", choose(results)[1]) and "did not gain" in choose(results)[1]


@pytest.fixture(scope="module")
def sotu(tmp_path_factory):
    """Real State of the Union passages: 16 per party from 1861-1945 (labeled), 16 per party from 1980 on."""
    folder = tmp_path_factory.mktemp("sotu")
    frame = load_builtin("sotu-party")
    old = frame[frame.year <= 1945].groupby("label").sample(16, random_state=0)[["text", "label"]]
    new = frame[frame.year >= 1980].groupby("label").sample(16, random_state=0)
    old.to_csv(folder / "source.csv", index=False)
    new[["text"]].to_csv(folder / "target.csv", index=False)
    new[["text", "label"]].to_csv(folder / "target_test.csv", index=False)
    return folder


def test_cli_fit_unlabeled_on_minilm_saves_a_model_that_loads_to_the_same_predictions(sotu, tmp_path):
    output = tmp_path / "model"
    arguments = [
        "fit", str(sotu / "source.csv"), "--unlabeled", str(sotu / "target.csv"), "--adapt", "coral", "--test",
        str(sotu / "target_test.csv"), "--strategy", "feature-extraction", "-o", str(output), "-q",
    ]  # fmt: skip
    done = CliRunner().invoke(app, arguments)
    assert done.exit_code == 0, done.output
    assert "adapt: coral (--adapt coral)" in done.output.splitlines()
    loaded = tk.load(output)
    assert loaded.info["adaptation"]["method"] == "coral" and loaded.data_info["n_unlabeled"] == 32
    texts = list(pd.read_csv(sotu / "target_test.csv").text[:6])
    source_only = tk.fit(str(sotu / "source.csv"), strategy="feature-extraction", quiet=True, test_size=0)
    direct = tk.fit(
        str(sotu / "source.csv"), unlabeled=str(sotu / "target.csv"), adapt="coral", strategy="feature-extraction",
        quiet=True, test_size=0,
    )  # fmt: skip
    np.testing.assert_allclose(loaded.predict_proba(texts), direct.predict_proba(texts), atol=1e-5)
    assert not np.allclose(loaded.predict_proba(texts), source_only.predict_proba(texts), atol=1e-3)


def test_auto_says_what_it_measured_and_the_choice_round_trips(sotu, tmp_path):
    source = pd.read_csv(sotu / "source.csv")
    target = list(pd.read_csv(sotu / "target.csv").text)
    model = tk.fit(source, unlabeled=target, backbone="toy-text", strategy="feature-extraction", quiet=True,
                   test_size=0, output=tmp_path / "auto")  # fmt: skip
    adaptation = model.info["adaptation"]
    assert set(adaptation["reverse_validation"]) == {"none", "coral", "subspace", "self-training"}
    assert "reverse validation" in adaptation["reason"] and adaptation["method"] in adaptation["reverse_validation"]
    loaded = tk.load(tmp_path / "auto")
    np.testing.assert_allclose(loaded.predict_proba(target[:5]), model.predict_proba(target[:5]), atol=1e-5)


def _digits(n: int = 60):
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.clip(digits.images[:n] * 16, 0, 255).astype(np.uint8)
    return list(images), [str(v) for v in digits.target[:n]]


def test_adabn_re_estimates_batch_norm_and_the_saved_model_predicts_the_same(tmp_path):
    images, labels = _digits()
    target = [255 - image for image in images[:32]]  # inverted scans: other pixel statistics (one batch of 32)
    backbone = create_backbone("small-cnn")
    before = {k: v.clone() for k, v in backbone.module.state_dict().items()}
    config = FitConfig(strategy="feature-extraction", adapt="adabn", quiet=True)
    model = fit_model(images, labels, task="classification", backbone=backbone, config=config, unlabeled=target)
    assert all(torch.equal(before[k], v) for k, v in backbone.module.state_dict().items())  # caller's untouched
    assert model.info["adaptation"]["method"] == "adabn" and model.finetuned
    layer = next(iter(batch_norm_layers(model.backbone).values()))
    pixels = torch.from_numpy(model.backbone.pixels(target))
    with torch.no_grad():
        first = model.backbone.module[0][0](pixels)  # the first convolution: its batch norm saw these outputs
    np.testing.assert_allclose(layer.running_mean.numpy(), first.mean((0, 2, 3)).numpy(), rtol=1e-3, atol=1e-4)
    tk.save(model, tmp_path / "adabn")
    loaded = tk.load(tmp_path / "adabn")
    np.testing.assert_allclose(loaded.predict_proba(target[:10]), model.predict_proba(target[:10]), atol=1e-5)
    assert "backbone-delta" in (tmp_path / "adabn" / "config.json").read_text()


def test_adabn_changes_only_batch_norm_statistics():
    backbone = create_backbone("small-cnn")
    parameters = {k: v.clone() for k, v in backbone.module.named_parameters()}
    changed = adabn(backbone, _digits(16)[0], batch_size=8)
    assert changed and all(name.endswith(("running_mean", "running_var", "num_batches_tracked")) for name in changed)
    assert all(torch.equal(parameters[k], v) for k, v in backbone.module.named_parameters())


def test_estimator_takes_unlabeled_inputs_in_fit():
    texts = ["free money now", "win a prize", "cheap pills", "claim your reward"] * 3
    texts += ["meeting at noon", "see the report", "lunch tomorrow?", "notes attached"] * 3
    labels = ["spam"] * 12 + ["ham"] * 12
    target = ["urgent: your account prize", "agenda for the review", "cash bonus inside", "minutes of the call"]
    classifier = tk.TransferClassifier(backbone="toy-text", strategy="feature-extraction", adapt="coral")
    classifier.fit(texts, labels, X_unlabeled=target)
    assert classifier.model_.info["adaptation"]["method"] == "coral"
    assert set(classifier.predict(target)) <= {"spam", "ham"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--unlabeled", "EMPTY"], "no data rows|empty|no inputs"),
        (["--unlabeled", "IMAGES"], "target inputs are image but the labeled inputs are text"),
        (["--unlabeled", "TARGET", "--strategy", "finetune", "--adapt", "coral"], "adapt='coral' .*frozen features"),
        (["--unlabeled", "TARGET", "--strategy", "contrastive"], "cannot use unlabeled target data with adapt='auto'"),
        (["--unlabeled", "TARGET", "--adapt", "adabn", "--strategy", "feature-extraction"], "adabn needs a backbone"),
        (["--adapt", "coral"], "needs unlabeled target inputs"),
    ],
)  # fmt: skip
def test_bad_adaptation_input_gives_one_line(sotu, tmp_path, options, message):
    (tmp_path / "empty.csv").write_text("text\n")
    images = tmp_path / "images"
    images.mkdir()
    for index, image in enumerate(_digits(3)[0]):
        from PIL import Image

        Image.fromarray(image).save(images / f"{index}.png")
    paths = {"EMPTY": str(tmp_path / "empty.csv"), "IMAGES": str(images), "TARGET": str(sotu / "target.csv")}
    options = [paths.get(option, option) for option in options]
    arguments = ["fit", str(sotu / "source.csv"), "--backbone", "toy-text", "-o", str(tmp_path / "m"), "-q", *options]
    done = CliRunner().invoke(app, arguments)
    assert done.exit_code == 2, done.output
    assert len(done.output.strip().splitlines()) == 1 and pytest.importorskip("re").search(message, done.output)
    assert not (tmp_path / "m").exists()


def test_adaptation_errors_are_transferkit_errors_in_python(sotu):
    with pytest.raises(TransferKitError, match="self-training' needs class labels"):
        config = FitConfig(strategy="feature-extraction", adapt="self-training")
        fit_model(["a b", "c d", "e f"], [1.0, 2.0, 3.0], task="regression", backbone="toy-text", config=config,
                  unlabeled=["g h"])  # fmt: skip
